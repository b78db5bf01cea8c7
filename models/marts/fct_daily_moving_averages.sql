-- Simple moving averages of the close over the last 20, 30, 50 and 200 trading days of each
-- symbol. A view: a query for one symbol reads and windows that symbol's rows only (the
-- symbol filter is pushed below the window functions, which partition by symbol).
{{ config(materialized='view') }}
{%- set windows = [20, 30, 50, 200] %}

with

running_close as (

    select * from {{ ref('int_daily_prices__running_close') }}

),

final as (

    select
        symbol,
        trade_date,
        close,
        {%- for window_rows in windows %}
        {{ trailing_average('running_close_sum', 'trading_day_number', window_rows, 'by_symbol') }} as sma_{{ window_rows }}{{ ',' if not loop.last }}
        {%- endfor %}
    from running_close
    window by_symbol as (partition by symbol order by trade_date)

)

select * from final
