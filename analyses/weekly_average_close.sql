-- Weekly average close per symbol, bucketed with TimescaleDB's time_bucket (weeks start on
-- Monday). The same figure is in fct_price_averages_weekly.avg_close; this shows the query.

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

final as (

    select
        symbol,
        {{ timescale_incremental.time_bucket('1 week', 'trade_date') }} as week_start,
        avg(close) as avg_close,
        count(close) as trading_days
    from daily_prices
    where close is not null
    group by symbol, week_start

)

select * from final
order by symbol, week_start
