-- Quarterly average high, low, volume and close per symbol, with the quarter candle.
{{ config(materialized='continuous_aggregate') }}

{{ period_price_averages('3 months') }}
