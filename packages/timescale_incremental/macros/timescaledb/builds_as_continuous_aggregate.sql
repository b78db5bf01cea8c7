{#- The one decision "continuous aggregate or table" (documented in macros/_macros.yml): the
    model asks for one, var use_continuous_aggregates is on, its buckets have a fixed width, the
    license allows it. The model's SQL and the materialization both ask this macro, so they
    never disagree. -#}
{% macro builds_as_continuous_aggregate(log_skip=false) -%}
    {%- if config.get('materialized') != 'continuous_aggregate' or not var('use_continuous_aggregates', false) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if log_skip -%}
        {%- if not timescale_incremental.timescaledb_feature_enabled('continuous aggregates', this.identifier) -%}
            {{ return(false) }}
        {%- endif -%}
    {%- elif timescale_incremental.timescaledb_license() != 'timescale' -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set bucket_width = config.require('bucket_width') -%}
    {%- if not timescale_incremental.bucket_width_is_fixed(bucket_width) -%}
        {%- if log_skip -%}
            {%- do log(this.identifier ~ ": a table, not a continuous aggregate: its buckets ('" ~ bucket_width
                       ~ "') vary in width, and TimescaleDB refreshes such a bucket by reading every later"
                       ~ " chunk of its source", info=true) -%}
        {%- endif -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(true) }}
{%- endmacro %}

{#- Whether every bucket of `bucket_width` spans the same time: no month (or year) component,
    as PostgreSQL reads the interval. Why it matters: TimescaleDB (2.19) turns a refresh
    window's upper bound into a bound on the source's time column only for such widths, so a
    month's refresh scans every chunk after the month. -#}
{% macro bucket_width_is_fixed(bucket_width) -%}
    {%- set width = 'interval ' ~ dbt.string_literal(bucket_width) -%}
    {%- set result = run_query(
        "select extract(year from " ~ width ~ ") = 0 and extract(month from " ~ width ~ ") = 0"
    ) -%}
    {{ return(result.columns[0].values()[0]) }}
{%- endmacro %}
