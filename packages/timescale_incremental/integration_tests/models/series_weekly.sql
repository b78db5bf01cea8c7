{{
    config(
        materialized='continuous_aggregate',
        bucket_width='1 week',
        indexes=[{'columns': ['symbol', 'period_start'], 'unique': true}]
    )
}}
{{ series_rollup('1 week', source('tsi_batches', 'series_weekly__batch')) }}
