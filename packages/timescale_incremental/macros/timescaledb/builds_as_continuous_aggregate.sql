{#- The one decision "continuous aggregate or table" (documented in macros/_macros.yml): the
    model asks for one, var use_continuous_aggregates is on, the license allows it. The model's
    SQL and the materialization both ask this macro, so they never disagree. -#}
{% macro builds_as_continuous_aggregate(log_skip=false) -%}
    {%- if config.get('materialized') != 'continuous_aggregate' or not var('use_continuous_aggregates', false) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if log_skip -%}
        {{ return(timescale_incremental.timescaledb_feature_enabled('continuous aggregates', this.identifier)) }}
    {%- endif -%}
    {{ return(timescale_incremental.timescaledb_license() == 'timescale') }}
{%- endmacro %}
