-- Yearly average high, low, volume and close per symbol, with the year candle.
{{ config(materialized='continuous_aggregate') }}

{{ period_price_averages('1 year') }}
