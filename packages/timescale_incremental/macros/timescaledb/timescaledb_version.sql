{#- The installed TimescaleDB extension version as text (e.g. '2.19.3'), or none. -#}
{% macro timescaledb_version() -%}
    {{ return(adapter.dispatch('timescaledb_version', 'timescale_incremental')()) }}
{%- endmacro %}

{% macro default__timescaledb_version() -%}
    {{ return(none) }}
{%- endmacro %}

{% macro postgres__timescaledb_version() -%}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set result = run_query("select extversion from pg_extension where extname = 'timescaledb'") -%}
    {%- set versions = result.columns[0].values() -%}
    {{ return(versions[0] if versions | length > 0 else none) }}
{%- endmacro %}
