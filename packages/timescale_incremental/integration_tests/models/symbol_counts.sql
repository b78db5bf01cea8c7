{{ config(materialized='table', indexes=[{'columns': ['symbol'], 'unique': true}]) }}

with

series_rows as (

    select * from {{ ref('series_rows') }}

),

final as (

    select
        symbol,
        count(*) as day_count
    from series_rows
    group by symbol

)

select * from final
