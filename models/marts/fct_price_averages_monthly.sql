-- Monthly average high, low, volume and close per symbol, with the month candle, over the
-- trading days (calendar months). Kept current by the changes of its source, not rebuilt: see
-- the package's continuous_aggregate materialization (a continuous aggregate where the
-- license allows, else a table whose routine recomputes the periods its batch names).
{%- set bucket_width = '1 month' %}
{%- set trading_days_model = ref('int_daily_prices__trading_days') %}
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
from {{ trading_days_model }}
group by symbol, period_start
{%- else %}

with

changed_periods as (

    -- Per symbol, the first period this call recomputes: the batch its routine fills from the
    -- trading days' change log (every symbol from the start on a full build), empty to everyone
    -- else, so this model run on its own selects nothing.
    select * from {{ source('batches', 'fct_price_averages_monthly__batch') }}

),

trading_days as (

    -- the trading days of those periods
    {{ timescale_incremental.changed_period_rows(trading_days_model, 'changed_periods', 'trade_date') | indent(4) }}

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
