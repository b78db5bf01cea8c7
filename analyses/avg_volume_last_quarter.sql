-- Average daily trading volume of one symbol in the last calendar quarter of its data.
-- "Last quarter" is the quarter of the symbol's latest trade date, which may be partial;
-- trading_days says how many days it covers.
--   dbt compile -s avg_volume_last_quarter --vars '{symbol: MSFT}'
{%- set symbol = var('symbol', 'AAPL') %}

with

quarterly as (

    select * from {{ ref('fct_price_averages_quarterly') }}

),

of_symbol as (

    select * from quarterly
    where symbol = {{ dbt.string_literal(symbol) }}

),

final as (

    select
        symbol,
        period_start as quarter_start,
        trading_days,
        avg_volume
    from of_symbol
    order by period_start desc
    limit 1

)

select * from final
