-- One row per symbol and trading day: the daily bar readers query, without access to
-- staging. A view: nothing to keep current, and a query for one symbol and a date range
-- reads staging's (symbol, trade_date) index and only the chunks of that range.
{{ config(materialized='view') }}

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

final as (

    select
        symbol,
        trade_date,
        open,
        high,
        low,
        close,
        adj_close,
        volume
    from daily_prices
    -- A row without a close (an empty holiday row some files carry) is not a trading day.
    where close is not null

)

select * from final
