{#- The tables incremental models keep beside them (owned by the transformer, created once):
    - <model>__changes: what the model rewrote, for the models fed by it. A row says "rows of
      `symbol` from `from_date` on may have changed"; from_date null: the symbol's whole
      history; symbol null: everything (a full build).
    - staging.incremental_watermarks: per consumer, the last change it applied.
    - staging.stg_market_data__applied_loads: the raw loads staging has applied. -#}
{% macro changes_relation(relation) -%}
    {#- While parsing, ref() gives the calling node itself, whose name may be too long to suffix. -#}
    {%- if not execute -%}{{ return(relation) }}{%- endif -%}
    {{ return(api.Relation.create(database=relation.database, schema=relation.schema,
                                  identifier=relation.identifier ~ '__changes', type='table')) }}
{%- endmacro %}

{% macro watermarks_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema='staging',
                                  identifier='incremental_watermarks', type='table')) }}
{%- endmacro %}

{% macro applied_loads_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema='staging',
                                  identifier='stg_market_data__applied_loads', type='table')) }}
{%- endmacro %}

{% macro apply_function_name(relation) -%}
    {{ relation.schema }}.{{ relation.identifier }}__apply
{%- endmacro %}

{% macro create_incremental_bookkeeping(relation) -%}
    create schema if not exists staging;
    create table if not exists {{ stock_analytics.watermarks_relation() }} (
        consumer text primary key,
        change_id bigint not null,
        updated_at timestamptz not null default now()
    );
    create table if not exists {{ stock_analytics.applied_loads_relation() }} (
        load_id bigint primary key,
        symbol text,
        load_mode text,
        applied_at timestamptz not null
    );
    create index if not exists stg_market_data__applied_loads_symbol_idx
        on {{ stock_analytics.applied_loads_relation() }} (symbol);
    create table if not exists {{ stock_analytics.changes_relation(relation) }} (
        change_id bigint generated always as identity primary key,
        symbol text,
        from_date date,
        recorded_at timestamptz not null default clock_timestamp()
    );
{%- endmacro %}
