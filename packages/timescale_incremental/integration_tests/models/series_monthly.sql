{{
    config(
        materialized='continuous_aggregate',
        bucket_width='1 month',
        indexes=[{'columns': ['symbol', 'period_start'], 'unique': true}]
    )
}}
{{ series_rollup('1 month', source('tsi_batches', 'series_monthly__batch')) }}
