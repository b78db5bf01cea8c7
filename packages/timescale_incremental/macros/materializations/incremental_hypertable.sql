{#- Materialize a model as a TimescaleDB hypertable that is created once and then kept up to
    date by an incremental step: a SQL function the materialization (re)creates from the
    model's SQL and calls, so that dbt and other callers (the live feed) apply the same rules.

    Config:
      time_column (required); chunk_time_interval (default var('chunk_time_interval'));
      indexes (must include the unique key, e.g. (symbol, trade_date));
      apply_strategy: 'raw_loads' (macro raw_loads_apply_function, with sessions = the calendar
        seed the price guard counts missed sessions on) or 'upstream_changes'
        (macro upstream_changes_apply_function, with changes_of = the upstream model's name);
      compress_segmentby, compress_orderby, compress_after (default var('compress_after')).

    A normal build never drops the table or what is built on it. --full-refresh rebuilds the
    rows in one transaction (readers wait, then see the new rows); only a change of the model's
    columns drops and recreates the table (with cascade, as dbt's table materialization does).
    Compression, where the license allows it, runs after the commit, on chunks not yet
    compressed (or partly decompressed by a correction) and older than compress_after. -#}
{% materialization incremental_hypertable, adapter='postgres' %}
    {%- set time_column = config.require('time_column') -%}
    {%- set strategy = config.require('apply_strategy') -%}
    {%- if strategy not in ['raw_loads', 'upstream_changes'] -%}
        {{ exceptions.raise_compiler_error("incremental_hypertable: apply_strategy must be 'raw_loads' or 'upstream_changes', got '" ~ strategy ~ "'") }}
    {%- endif -%}
    {%- set chunk_time_interval = config.get('chunk_time_interval', var('chunk_time_interval', '365 days')) -%}
    {%- set compress_after = config.get('compress_after', var('compress_after', none)) -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set full_refresh = existing_relation is none or should_full_refresh() -%}
    {%- set grant_config = config.get('grants') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- call statement('bookkeeping') -%}
        {{ stock_analytics.create_incremental_bookkeeping(target_relation) }}
        {{ stock_analytics.create_apply_batch_table(strategy) }}
        {%- if strategy == 'raw_loads' %}
        {{ stock_analytics.create_price_guard_tables() }}
        {%- endif %}
    {%- endcall -%}

    {#- The model's SQL outside its apply function: the batch is empty. -#}
    {%- set empty_batch_sql = sql | replace(stock_analytics.batch_load_ids(), 'cast(array[] as bigint[])') -%}
    {%- set columns = get_columns_in_query(empty_batch_sql) -%}
    {%- if existing_relation is not none and full_refresh -%}
        {%- set existing_columns = adapter.get_columns_in_relation(existing_relation) | map(attribute='name') | list -%}
        {%- if existing_relation.type != 'table' or existing_columns != columns -%}
            {%- do log("incremental_hypertable: " ~ target_relation ~ " changes its columns: dropped and created again", info=true) -%}
            {%- do adapter.drop_relation(existing_relation) -%}
            {%- set existing_relation = none -%}
        {%- endif -%}
    {%- elif existing_relation is not none and existing_relation.type != 'table' -%}
        {{ exceptions.raise_compiler_error(target_relation ~ " exists as a " ~ existing_relation.type ~ ": run dbt build --full-refresh -s " ~ model.name) }}
    {%- endif -%}

    {%- if existing_relation is none -%}
        {#- One statement string, so one transaction: never a table without its index. -#}
        {%- call statement('create_table') -%}
            create table {{ target_relation }} as ({{ empty_batch_sql }}) with no data;
            {{ stock_analytics.create_hypertable(target_relation, time_column, chunk_time_interval) }};
            {%- for index in config.get('indexes', []) %}
            {{ get_create_index_sql(target_relation, index) }};
            {%- endfor %}
        {%- endcall -%}
        {#- The model's SQL was compiled before its table existed, without the steps that read
            the table (incremental_table_exists): compiled again for the apply function, which
            later callers (the next build, the live feed) run against a table with rows. -#}
        {%- do adapter.cache_added(target_relation) -%}
        {%- set sql = render(model.raw_code) -%}
    {%- endif -%}
    {%- set compressed = stock_analytics.enable_compression(
        target_relation, config.get('compress_segmentby', ''), config.get('compress_orderby', time_column ~ ' desc'),
        compress_after) -%}

    {%- call statement('apply_function') -%}
        {%- if strategy == 'raw_loads' -%}
        {{ stock_analytics.raw_loads_apply_function(
            target_relation, sql, columns, ['symbol', time_column], ref(config.require('sessions'))) }}
        {%- else -%}
        {{ stock_analytics.upstream_changes_apply_function(
            target_relation, sql, columns, ref(config.require('changes_of')), time_column) }}
        {%- endif -%}
        ;
        {{ stock_analytics.grant_to_live_feed(stock_analytics.apply_function_name(target_relation)) }}
    {%- endcall -%}

    {%- call statement('main', fetch_result=True) -%}
        {%- if strategy == 'raw_loads' %}
        select * from {{ stock_analytics.apply_function_name(target_relation) }}(
            p_full => {{ 'true' if full_refresh else 'false' }},
            p_accept => {{ stock_analytics.accepted_held_prices() }}
        )
        {%- else %}
        select * from {{ stock_analytics.apply_function_name(target_relation) }}(p_full => {{ 'true' if full_refresh else 'false' }})
        {%- endif %}
    {%- endcall -%}
    {%- set applied = load_result('main')['table'] -%}
    {%- set summary = [] -%}
    {%- for name in applied.column_names -%}
        {%- do summary.append(name ~ ' ' ~ applied.rows[0][name]) -%}
    {%- endfor -%}
    {%- do log(target_relation ~ ": " ~ summary | join(', '), info=true) -%}
    {%- if strategy == 'raw_loads' -%}
        {%- do stock_analytics.log_held_prices() -%}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- do persist_docs(target_relation, model) -%}
    {{ adapter.commit() }}

    {%- if compressed -%}
        {%- do stock_analytics.compress_old_chunks(target_relation, compress_after) -%}
    {%- endif -%}
    {%- set revoke = should_revoke(existing_relation, full_refresh_mode=full_refresh) -%}
    {%- do apply_grants(target_relation, grant_config, should_revoke=revoke) -%}

    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

{#- The batch table of an apply function (apply_batch). The materialization creates it for the
    session, to plan the model's SQL before the function runs (dbt's statements each commit:
    autocommit); the function creates it too, for callers outside dbt, dropped at commit; when
    it exists already the function only truncates it. -#}
{% macro create_apply_batch_table(strategy, on_commit_drop=false) -%}
    create table if not exists {{ stock_analytics.apply_batch() }} (
        {%- if strategy == 'raw_loads' %}
        -- a feed load: symbol null, or one row per recomputed symbol it holds
        load_id bigint not null,
        symbol text,
        recompute boolean not null
        {%- else %}
        symbol text primary key,
        from_date date
        {%- endif %}
    ){{ ' on commit drop' if on_commit_drop }};
{%- endmacro %}
