{#- The start of the `bucket_width` bucket holding `column`: weeks start on Monday (ISO),
    months, quarters and years on calendar boundaries. For a date column it returns a date. -#}
{% macro time_bucket(bucket_width, column) -%}
    {{ return(adapter.dispatch('time_bucket', 'timescale_incremental')(bucket_width, column)) }}
{%- endmacro %}

{% macro postgres__time_bucket(bucket_width, column) -%}
    time_bucket(interval {{ dbt.string_literal(bucket_width) }}, {{ column }})
{%- endmacro %}

{#- Without TimescaleDB: the same buckets for the widths the project uses. -#}
{% macro default__time_bucket(bucket_width, column) -%}
    {%- set date_parts = {'1 week': 'week', '1 month': 'month', '3 months': 'quarter', '1 year': 'year'} -%}
    {%- if bucket_width not in date_parts -%}
        {{ exceptions.raise_compiler_error("time_bucket: no fallback for width '" ~ bucket_width ~ "'") }}
    {%- endif -%}
    cast(date_trunc('{{ date_parts[bucket_width] }}', {{ column }}) as date)
{%- endmacro %}


{#- The whole buckets of `bucket_width` that hold the dates of `date_range` (documented in
    macros/_macros.yml, whole_buckets). -#}
{% macro whole_buckets(bucket_width, date_range, function_schema=none) -%}
    {%- set bucket = (function_schema ~ '.' if function_schema else '') ~ 'time_bucket' -%}
    {%- set width = 'interval ' ~ dbt.string_literal(bucket_width) -%}
    daterange(
        {{ bucket }}({{ width }}, lower({{ date_range }})),
        cast({{ bucket }}({{ width }}, upper({{ date_range }}) - 1) + {{ width }} as date)
    )
{%- endmacro %}
