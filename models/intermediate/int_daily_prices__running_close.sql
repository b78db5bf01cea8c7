-- Per symbol, each trading day's number and the running sum of closes up to it: a moving
-- average is then one subtraction, O(1) a row whatever the window (a float8 `avg() over`
-- frame recomputes the whole window each row). The sum is numeric, so it is exact and the
-- subtraction loses nothing however long the history.

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

trading_days as (

    -- A row without a close (e.g. an all-empty holiday row) is not a trading day.
    select
        symbol,
        trade_date,
        close
    from daily_prices
    where close is not null

),

final as (

    select
        symbol,
        trade_date,
        close,
        row_number() over by_symbol as trading_day_number,
        sum(cast(close as numeric)) over by_symbol as running_close_sum
    from trading_days
    window by_symbol as (partition by symbol order by trade_date rows unbounded preceding)

)

select * from final
