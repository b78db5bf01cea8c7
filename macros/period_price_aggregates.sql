{#- The columns of a period mart, after `symbol`: the start of the `bucket_width` bucket of
    time_bucket ('1 week', '1 month', '3 months', '1 year'), then over the bucket's trading
    days their count, the average high, low, volume and close, and the candle (first positive
    open, max high, min low, last close, total volume). The period's open is the first
    positive one: Yahoo writes 0 where it has no open (whole years of BAC, ED, CVX).
    One rule for the four marts; each mart stays its own readable SELECT. -#}
{% macro period_price_aggregates(bucket_width, date_column='trade_date') -%}
    {%- set allowed = ['1 week', '1 month', '3 months', '1 year'] -%}
    {%- if bucket_width not in allowed -%}
        {{ exceptions.raise_compiler_error(
            "period_price_aggregates: bucket_width must be one of " ~ allowed ~ ", got '" ~ bucket_width ~ "'"
        ) }}
    {%- endif -%}
{{ timescale_incremental.time_bucket(bucket_width, date_column) }} as period_start,
count(*) as trading_days,
avg(high) as avg_high,
avg(low) as avg_low,
cast(avg(volume) as double precision) as avg_volume,
avg(close) as avg_close,
first(open, {{ date_column }}) filter (where open > 0) as period_open,
max(high) as period_high,
min(low) as period_low,
last(close, {{ date_column }}) as period_close,
cast(sum(volume) as bigint) as total_volume
{%- endmacro %}
