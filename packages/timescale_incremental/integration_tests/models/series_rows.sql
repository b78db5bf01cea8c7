{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='append_rows',
        time_column='day',
        indexes=[{'columns': ['symbol', 'day'], 'unique': true}]
    )
}}

with

batch as (

    select * from {{ timescale_incremental.apply_batch() }}

),

prices as (

    select * from {{ source('tsi_source', 'prices') }}

),

final as (

    select
        prices.symbol,
        prices.day,
        prices.price
    from prices
    inner join batch on prices.symbol = batch.symbol
    where prices.day >= coalesce(batch.from_day, '-infinity')

)

select * from final
