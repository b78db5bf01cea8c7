-- Day-over-day change of the close, absolute and in percent, per symbol, over trading days
-- (rows with a close). The window is partitioned by symbol: without that, each symbol's
-- first day would be compared with the previous symbol's last day.

with

trading_days as (

    select * from {{ ref('fct_daily_prices') }}

),

with_previous as (

    select
        symbol,
        trade_date,
        close,
        lag(close) over (partition by symbol order by trade_date) as previous_close
    from trading_days

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
