{#- Whether the model being compiled will be built as a TimescaleDB continuous aggregate:
    it asks for materialized='continuous_aggregate', var('use_continuous_aggregates') is on,
    and the server's license allows it. The period marts use it to choose their form: the
    single SELECT a continuous aggregate needs, or the usual CTE layout (a period table).
    Silent; the materialization logs a skip. -#}
{% macro builds_as_continuous_aggregate() -%}
    {{ return(
        config.get('materialized') == 'continuous_aggregate'
        and var('use_continuous_aggregates', false)
        and stock_analytics.timescaledb_license() == 'timescale'
    ) }}
{%- endmacro %}
