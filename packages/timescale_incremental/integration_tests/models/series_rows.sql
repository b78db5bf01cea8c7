{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='append_rows',
        time_column='price_date',
        indexes=[{'columns': ['symbol', 'price_date'], 'unique': true}]
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
        prices.price_date,
        prices.price
    from prices
    inner join batch on prices.symbol = batch.symbol
    where prices.price_date >= coalesce(batch.from_price_date, '-infinity')

)

select * from final
