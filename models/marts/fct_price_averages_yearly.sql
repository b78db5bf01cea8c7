-- Yearly average high, low, volume and close per symbol, with the year candle, over the
-- trading days (calendar years). Kept current by the changes of its source, not rebuilt: see
-- macros/materializations/continuous_aggregate.sql (a continuous aggregate where the license
-- allows, else a table with an apply function).
{%- set bucket_width = '1 year' %}
{{
    config(
        materialized='continuous_aggregate',
        bucket_width=bucket_width,
        indexes=[{'columns': ['symbol', 'period_start'], 'unique': true}]
    )
}}

{%- set period_columns -%}
symbol,
{{ time_bucket(bucket_width, 'trade_date') }} as period_start,
count(*) as trading_days,
avg(high) as avg_high,
avg(low) as avg_low,
cast(avg(volume) as double precision) as avg_volume,
avg(close) as avg_close,
-- Yahoo writes 0 where it has no open (whole years of BAC, ED, CVX): the first positive one
first(open, trade_date) filter (where open > 0) as period_open,
max(high) as period_high,
min(low) as period_low,
last(close, trade_date) as period_close,
cast(sum(volume) as bigint) as total_volume
{%- endset %}

{%- if builds_as_continuous_aggregate() %}
-- A continuous aggregate must be one SELECT on the hypertable.
select
    {{ period_columns | indent(4) }}
from {{ ref('int_daily_prices__trading_days') }}
group by symbol, period_start
{%- else %}

with

trading_days as (

    select * from {{ ref('int_daily_prices__trading_days') }}

),

final as (

    select
        {{ period_columns | indent(8) }}
    from trading_days
    group by symbol, period_start

)

select * from final
{%- endif %}
