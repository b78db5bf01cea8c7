-- Yearly average high, low, volume and close per symbol, with the year candle.
{{
    config(
        materialized='continuous_aggregate',
        indexes=[{'columns': ['symbol', 'period_start'], 'unique': true}]
    )
}}

{{ period_price_averages('1 year') }}
