-- Weekly average high, low, volume and close per symbol, with the week candle, over the
-- trading days (weeks start on Monday, ISO). Kept current by its source's changes, not rebuilt: see
-- macros/materializations/continuous_aggregate.sql (a continuous aggregate where the license
-- allows, else a table with an apply function).
{%- set bucket_width = '1 week' %}
{{
    config(
        materialized='continuous_aggregate',
        bucket_width=bucket_width,
        indexes=[{'columns': ['symbol', 'period_start'], 'unique': true}]
    )
}}

{%- if timescale_incremental.builds_as_continuous_aggregate() %}
-- A continuous aggregate must be one SELECT on the hypertable.
select
    symbol,
    {{ period_price_aggregates(bucket_width) | indent(4) }}
from {{ ref('int_daily_prices__trading_days') }}
group by symbol, period_start
{%- else %}

with

trading_days as (

    select * from {{ ref('int_daily_prices__trading_days') }}

),

final as (

    select
        symbol,
        {{ period_price_aggregates(bucket_width) | indent(8) }}
    from trading_days
    group by symbol, period_start

)

select * from final
{%- endif %}
