{#- materialized='incremental_hypertable' (documented in macros/_macros.yml): a hypertable
    created once and kept current by the apply routine of its strategy, which every caller (dbt,
    the live feed) runs, so the rules exist once. -#}
{% materialization incremental_hypertable, adapter='postgres' %}
    {%- set time_column = config.require('time_column') -%}
    {%- set strategy = config.require('apply_strategy') -%}
    {%- set apply_function_sql = timescale_incremental.strategy_macro(strategy, 'apply_function_sql') -%}
    {%- set apply_call_sql = timescale_incremental.strategy_macro(strategy, 'apply_call_sql') -%}
    {%- set setup_sql = timescale_incremental.strategy_macro(strategy, 'setup_sql', required=false) -%}
    {%- set after_apply = timescale_incremental.strategy_macro(strategy, 'after_apply', required=false) -%}
    {%- set chunk_time_interval = config.get('chunk_time_interval', var('chunk_time_interval', '365 days')) -%}
    {%- set compress_after = config.get('compress_after', var('compress_after', none)) -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set full_refresh = existing_relation is none or should_full_refresh() -%}
    {%- set grant_config = config.get('grants') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- call statement('bookkeeping') -%}
        {{ timescale_incremental.create_incremental_bookkeeping(target_relation) }}
        {{ timescale_incremental.create_apply_batch_table(
            target_relation, timescale_incremental.strategy_macro(strategy, 'batch_columns')()) }}
        {%- if setup_sql is not none %}
        {{ setup_sql(target_relation) }}
        {%- endif %}
    {%- endcall -%}

    {%- set carries_windows = timescale_incremental.carried_windows_config() is not none -%}
    {%- if carries_windows and existing_relation is not none and existing_relation.type == 'table' -%}
        {#- before the SQL that reads them is probed: missing, they are not a model change -#}
        {%- call statement('carried_windows') -%}
            {{ timescale_incremental.create_carried_windows_table(target_relation, time_column) }}
        {%- endcall -%}
    {%- endif -%}

    {#- Outside its routine the model's batch is empty: its SQL runs as it stands. -#}
    {%- set columns = timescale_incremental.query_columns(sql) -%}
    {#- A table built by an earlier release of the model may lack columns the SQL reads from
        it (the stored state of a new column): it is built again, from the SQL of a first build. -#}
    {%- if columns is none and existing_relation is not none and existing_relation.type == 'table' -%}
        {%- do log("incremental_hypertable: " ~ target_relation ~ " lacks columns the model reads: dropped and built again from every row", info=true) -%}
        {%- do adapter.drop_relation(existing_relation) -%}
        {%- set existing_relation = none -%}
        {%- set full_refresh = true -%}
        {%- set sql = render(model.raw_code) -%}
    {%- endif -%}
    {%- if columns is none -%}
        {#- dbt's own query: the error it raises names what is missing -#}
        {%- set columns = get_columns_in_query(sql) -%}
    {%- endif -%}
    {%- if existing_relation is not none and existing_relation.type != 'table' and not full_refresh -%}
        {{ exceptions.raise_compiler_error(target_relation ~ " exists as a " ~ existing_relation.type ~ ": run dbt build --full-refresh -s " ~ model.name) }}
    {%- elif existing_relation is not none -%}
        {%- set existing_columns = adapter.get_columns_in_relation(existing_relation) | map(attribute='name') | list -%}
        {#- New columns (a new release of the model) are filled for every row: the table is built
            again from the upstream rows, which the rebuild never changes. -#}
        {%- if existing_relation.type != 'table' or existing_columns != columns -%}
            {%- do log("incremental_hypertable: " ~ target_relation ~ " changes its columns: dropped and built again from every row", info=true) -%}
            {%- do adapter.drop_relation(existing_relation) -%}
            {%- set existing_relation = none -%}
            {%- set full_refresh = true -%}
            {#- compiled again without the steps that read the dropped table -#}
            {%- set sql = render(model.raw_code) -%}
        {%- endif -%}
    {%- endif -%}

    {%- if existing_relation is none -%}
        {#- One statement string, so one transaction: never a table without its index. -#}
        {%- call statement('create_table') -%}
            create table {{ target_relation }} as ({{ sql }}) with no data;
            {{ timescale_incremental.create_hypertable(target_relation, time_column, chunk_time_interval) }};
            {%- for index in config.get('indexes', []) %}
            {{ get_create_index_sql(target_relation, index) }};
            {%- endfor %}
        {%- endcall -%}
        {#- The model's SQL was compiled before its table existed, without the steps that read
            the table (incremental_table_exists): compiled again for the apply function, which
            later callers (the next build, the live feed) run against a table with rows. -#}
        {%- do adapter.cache_added(target_relation) -%}
        {%- if carries_windows -%}
            {%- call statement('carried_windows') -%}
                {{ timescale_incremental.create_carried_windows_table(target_relation, time_column) }}
            {%- endcall -%}
        {%- endif -%}
        {%- set sql = render(model.raw_code) -%}
    {%- endif -%}
    {%- set compressed = timescale_incremental.enable_compression(
        target_relation, config.get('compress_segmentby', ''), config.get('compress_orderby', time_column ~ ' desc'),
        compress_after) -%}

    {%- call statement('apply_function') -%}
        {{ apply_function_sql(target_relation, sql, columns, ['symbol', time_column]) }};
        {{ timescale_incremental.grant_to_caller(timescale_incremental.routine_name(target_relation, 'apply')) }}
        {{ timescale_incremental.register_routine(
            target_relation, timescale_incremental.routine_name(target_relation, 'apply'), strategy) }}
    {%- endcall -%}

    {%- call statement('main', fetch_result=True) -%}
        {{ apply_call_sql(target_relation, full_refresh) }}
    {%- endcall -%}
    {%- set applied = load_result('main')['table'] -%}
    {%- set summary = [] -%}
    {%- for name in applied.column_names -%}
        {%- do summary.append(name ~ ' ' ~ applied.rows[0][name]) -%}
    {%- endfor -%}
    {%- do log(target_relation ~ ": " ~ summary | join(', '), info=true) -%}
    {%- if after_apply is not none -%}
        {%- do after_apply(target_relation) -%}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- do persist_docs(target_relation, model) -%}
    {{ adapter.commit() }}

    {%- if compressed -%}
        {%- do timescale_incremental.compress_old_chunks(target_relation, compress_after) -%}
    {%- endif -%}
    {%- set revoke = should_revoke(existing_relation, full_refresh_mode=full_refresh) -%}
    {%- do apply_grants(target_relation, grant_config, should_revoke=revoke) -%}

    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- The names of a query's columns, or none when a column or relation it reads is missing:
    one round trip, the query parsed into a temporary view (dropped at once), not planned. -#}
{% macro query_columns(sql) -%}
    {%- call statement('query_columns', fetch_result=True) -%}
        do $query_columns$
        declare
            names text;
        begin
            execute $probe$ create temporary view timescale_incremental__query_columns as ({{ sql }}) $probe$;
            select json_agg(attname order by attnum) into names
            from pg_attribute
            where attrelid = 'pg_temp.timescale_incremental__query_columns'::regclass and attnum > 0;
            drop view pg_temp.timescale_incremental__query_columns;
            perform set_config('timescale_incremental.query_columns', names, true);
        exception when undefined_column or undefined_table then
            perform set_config('timescale_incremental.query_columns', '[]', true);
        end
        $query_columns$;
        select current_setting('timescale_incremental.query_columns') as column_names
    {%- endcall -%}
    {%- set names = fromjson(load_result('query_columns').table.rows[0]['column_names']) -%}
    {{ return(names if names else none) }}
{%- endmacro %}
