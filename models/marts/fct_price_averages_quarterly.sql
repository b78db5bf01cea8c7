-- Quarterly average high, low, volume and close per symbol, with the quarter candle.
{{
    config(
        materialized='continuous_aggregate',
        indexes=[{'columns': ['symbol', 'period_start'], 'unique': true}]
    )
}}

{{ period_price_averages('3 months') }}
