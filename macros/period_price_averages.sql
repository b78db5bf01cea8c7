{#- The body of a period-average mart: one row per (symbol, period_start) with the period's
    average high, low, volume and close and its candle (first open, max high, min low, last
    close, total volume), over the trading days (rows with a close) in each `bucket_width`
    bucket ('1 week', '1 month', '3 months', '1 year') of time_bucket. The period's open is
    the first positive open: Yahoo writes 0 where it has no open (whole years of BAC, ED, CVX).

    As a continuous aggregate TimescaleDB accepts only a single SELECT on the hypertable, so
    that form is emitted when the model is built as one; otherwise the usual CTE layout. -#}
{% macro period_price_averages(bucket_width) -%}
    {%- set allowed = ['1 week', '1 month', '3 months', '1 year'] -%}
    {%- if bucket_width not in allowed -%}
        {{ exceptions.raise_compiler_error("period_price_averages: bucket_width must be one of " ~ allowed ~ ", got '" ~ bucket_width ~ "'") }}
    {%- endif -%}
    {%- set aggregates -%}
        {{ stock_analytics.time_bucket(bucket_width, 'trade_date') }} as period_start,
        count(*) as trading_days,
        avg(high) as avg_high,
        avg(low) as avg_low,
        cast(avg(volume) as double precision) as avg_volume,
        avg(close) as avg_close,
        first(open, trade_date) filter (where open > 0) as period_open,
        max(high) as period_high,
        min(low) as period_low,
        last(close, trade_date) as period_close,
        cast(sum(volume) as bigint) as total_volume
    {%- endset -%}

    {%- if stock_analytics.builds_as_continuous_aggregate() %}
select
    symbol,
    {{ aggregates }}
from {{ ref('stg_market_data__daily_prices') }}
where close is not null
group by symbol, period_start
    {%- else %}
with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

trading_days as (

    select * from daily_prices
    where close is not null

),

final as (

    select
        symbol,
        {{ aggregates }}
    from trading_days
    group by symbol, period_start

)

select * from final
    {%- endif %}
{%- endmacro %}
