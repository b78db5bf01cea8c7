-- Monthly average high, low, volume and close per symbol, with the month candle, over the
-- trading days (calendar months). It reads staging, not the trading days: a corrected old bar
-- rewrites the trading days' moving averages and indicators to the end of the history, but in
-- staging only that bar, so only its month is aggregated again. Kept current by staging's changes,
-- not rebuilt: see the package's continuous_aggregate materialization (a table whose routine
-- recomputes the periods its batch names: a continuous aggregate's refresh of a variable-width
-- bucket reads every later chunk of staging, so the package builds one only for fixed widths).
{%- set bucket_width = '1 month' %}
{%- set daily_prices_model = ref('stg_market_data__daily_prices') %}
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
from {{ daily_prices_model }}
where {{ is_trading_day('close') }}
group by symbol, period_start
{%- else %}

with

changed_periods as (

    -- Per symbol, the first period this call recomputes: the batch its routine fills from
    -- staging's change log (every symbol from the start on a full build), empty to everyone
    -- else, so this model run on its own selects nothing.
    select * from {{ source('batches', 'fct_price_averages_monthly__batch') }}

),

daily_prices as (

    -- the staged rows of those periods
    {{ timescale_incremental.changed_period_rows(daily_prices_model, 'changed_periods', 'trade_date') | indent(4) }}

),

trading_days as (

    select * from daily_prices
    where {{ is_trading_day('close') }}

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
