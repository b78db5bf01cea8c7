{#- Materialize a model as a TimescaleDB hypertable, rebuilt in full on each run.

    The new table is built beside the old one (empty, made a hypertable, then filled and
    indexed) and swapped in by renames in one transaction: readers see the old table or the
    new one, never a half-built one.

    Config: time_column (required), chunk_time_interval (default var('chunk_time_interval')),
    indexes (the postgres adapter's `indexes` config), compress_segmentby, compress_orderby,
    compress_after (default var('compress_after')). -#}
{% materialization hypertable, adapter='postgres' %}
    {%- set time_column = config.require('time_column') -%}
    {%- set chunk_time_interval = config.get('chunk_time_interval', var('chunk_time_interval', '365 days')) -%}
    {%- set compress_after = config.get('compress_after', var('compress_after', none)) -%}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- set backup_relation_type = 'table' if existing_relation is none else existing_relation.type -%}
    {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
    {%- set grant_config = config.get('grants') -%}

    {{ drop_relation_if_exists(load_cached_relation(intermediate_relation)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- call statement('main') -%}
        {%- if config.get('contract').enforced %}
        {{ get_assert_columns_equivalent(sql) }}
        create table {{ intermediate_relation }} {{ get_table_columns_and_constraints() }};
        {%- else %}
        create table {{ intermediate_relation }} as ({{ sql }}) with no data;
        {%- endif %}
        {{ stock_analytics.create_hypertable(intermediate_relation, time_column, chunk_time_interval) }};
        insert into {{ intermediate_relation }} ({{ sql }});
    {%- endcall -%}

    {%- do create_indexes(intermediate_relation) -%}
    {%- call statement('analyze') -%}analyze {{ intermediate_relation }}{%- endcall -%}

    {%- if existing_relation is not none -%}
        {{ adapter.rename_relation(existing_relation, backup_relation) }}
    {%- endif -%}
    {{ adapter.rename_relation(intermediate_relation, target_relation) }}

    {%- do stock_analytics.compress_hypertable(
        target_relation,
        config.get('compress_segmentby', ''),
        config.get('compress_orderby', time_column ~ ' desc'),
        compress_after
    ) -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- do persist_docs(target_relation, model) -%}
    {{ adapter.commit() }}

    {#- Drops with cascade, through the adapter so that dbt's relation cache forgets the views
        built on the old table too; they are rebuilt downstream in the same run. -#}
    {%- if existing_relation is not none -%}
        {%- do adapter.drop_relation(backup_relation) -%}
    {%- endif -%}
    {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) -%}
    {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}

    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
