-- Monthly average high, low, volume and close per symbol, with the month candle.
{{ config(materialized='continuous_aggregate') }}

{{ period_price_averages('1 month') }}
