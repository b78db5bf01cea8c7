{#- dbt run-operation print_timescaledb_info: what this server offers the project. -#}
{% macro print_timescaledb_info() -%}
    {%- set version = timescale_incremental.timescaledb_version() -%}
    {%- set license = timescale_incremental.timescaledb_license() -%}
    {%- if version is none -%}
        {%- do print("TimescaleDB is not installed in this database: CREATE EXTENSION timescaledb") -%}
    {%- else -%}
        {%- do print("TimescaleDB " ~ version ~ ", license " ~ license ~ ": compression and continuous aggregates "
                     ~ ("available" if license == 'timescale' else "not available (need the community edition)")) -%}
    {%- endif -%}
{%- endmacro %}
