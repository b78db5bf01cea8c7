-- Day-over-day change of the close, absolute and in percent, per symbol. The window is
-- partitioned by symbol: without that, each symbol's first day would be compared with the
-- previous symbol's last day.

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

with_previous as (

    select
        symbol,
        trade_date,
        close,
        lag(close) over (partition by symbol order by trade_date) as previous_close
    from daily_prices
    where close is not null

),

final as (

    select
        symbol,
        trade_date,
        close,
        previous_close,
        close - previous_close as change,
        100 * (close - previous_close) / nullif(previous_close, 0) as change_percent
    from with_previous

)

select * from final
order by symbol, trade_date
