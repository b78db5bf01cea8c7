{#- The server's TimescaleDB license edition: 'timescale' (community: compression, continuous
    aggregates, policies), 'apache' (hypertables and time_bucket only), or none when the
    extension is not installed in the database. Only meaningful at execution time. -#}
{% macro timescaledb_license() -%}
    {{ return(adapter.dispatch('timescaledb_license', 'timescale_incremental')()) }}
{%- endmacro %}

{% macro default__timescaledb_license() -%}
    {{ return(none) }}
{%- endmacro %}

{% macro postgres__timescaledb_license() -%}
    {%- if not execute -%}{{ return(none) }}{%- endif -%}
    {%- set result = run_query(
        "select case when exists (select from pg_extension where extname = 'timescaledb')
                     then current_setting('timescaledb.license', true) end"
    ) -%}
    {{ return(result.columns[0].values()[0]) }}
{%- endmacro %}
