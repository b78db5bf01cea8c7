{#- The table form of a period mart (documented in macros/_macros.yml, build_period_table). -#}
{% macro build_period_table() %}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set feed = timescale_incremental.period_feed() -%}
    {%- set apply_function = timescale_incremental.routine_name(this, 'apply') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {#- The batch the model's SQL reads: it must exist before the SQL is planned, by the column
        comparison below too (a table built by a release before the batch had none). -#}
    {%- call statement('period_batch') -%}
        {{ timescale_incremental.create_apply_batch_table(this, timescale_incremental.period_batch_columns()) }}
        -- a batch created by a release before the changed periods lacks them
        {{ timescale_incremental.add_column_if_missing(timescale_incremental.apply_batch(this), 'periods', 'datemultirange') }}
    {%- endcall -%}
    {%- set columns = timescale_incremental.period_column_names() -%}

    {%- set rebuild_reason = none -%}
    {%- if existing_relation is none -%}
        {%- set rebuild_reason = 'first build' -%}
    {%- elif should_full_refresh() -%}
        {%- set rebuild_reason = 'full refresh' -%}
    {%- elif timescale_incremental.is_continuous_aggregate(existing_relation) or not existing_relation.is_table -%}
        {%- set rebuild_reason = 'it was built as a continuous aggregate' -%}
    {%- elif timescale_incremental.period_columns_changed(existing_relation, columns) -%}
        {%- set rebuild_reason = 'its columns changed' -%}
    {%- elif timescale_incremental.watermark_counts_another_log(feed.consumer, feed.changes) -%}
        {%- set rebuild_reason = 'it reads another model than when it was built' -%}
    {%- endif -%}

    {%- if rebuild_reason is not none -%}
        {%- do log(this ~ ": building the table (" ~ rebuild_reason ~ ")", info=true) -%}
        {%- if existing_relation is not none and not existing_relation.is_table -%}
            {%- do timescale_incremental.drop_period_relation(existing_relation) -%}
            {%- set existing_relation = none -%}
        {%- endif -%}
        {%- do timescale_incremental.swap_in_period_table(target_relation, existing_relation, feed, columns) -%}
    {%- endif -%}

    {#- The rule, created or replaced on every build so that it always matches the model. -#}
    {%- call statement('apply_function') -%}
        {{ timescale_incremental.period_table_apply_function(apply_function, target_relation, feed, columns) }}
    {%- endcall -%}
    {%- if rebuild_reason is none -%}
        {%- call statement('main', fetch_result=True) -%}
            select * from {{ apply_function }}()
        {%- endcall -%}
        {%- set applied = load_result('main').table.rows[0] -%}
        {%- do log(this ~ ": applied " ~ applied['changes_applied'] ~ " changes of " ~ feed.source.identifier
                   ~ " (" ~ applied['periods_deleted'] ~ " periods deleted, " ~ applied['periods_inserted'] ~ " inserted)", info=true) -%}
    {%- else -%}
        {%- call statement('main') -%}select 'built'{%- endcall -%}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- do persist_docs(target_relation, model) -%}
    {{ adapter.commit() }}

    {%- if rebuild_reason is not none and existing_relation is not none -%}
        {%- do adapter.drop_relation(make_backup_relation(target_relation, 'table')) -%}
    {%- endif -%}
    {%- set revoke = should_revoke(existing_relation, full_refresh_mode=True) -%}
    {%- do apply_grants(target_relation, config.get('grants'), should_revoke=revoke) -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmacro %}


{#- One statement, so one transaction whatever the autocommit setting. The watermark is set
    first: its row lock makes a concurrent apply wait for the swap, and a change committed while
    the table fills is applied again by the next apply, which is harmless. -#}
{% macro swap_in_period_table(target_relation, existing_relation, feed, columns) %}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- set backup_relation = make_backup_relation(target_relation, 'table') -%}
    {{ drop_relation_if_exists(load_cached_relation(intermediate_relation)) }}
    {{ drop_relation_if_exists(load_cached_relation(backup_relation)) }}
    {%- call statement('swap_in_period_table') -%}
        {{ timescale_incremental.watermark_reset_to_latest(feed.consumer, feed.changes) | indent(8) }}

        {% if config.get('contract').enforced -%}
        {{ get_assert_columns_equivalent(sql) }}
        create table {{ intermediate_relation }} {{ get_table_columns_and_constraints() }};
        {%- else -%}
        create table {{ intermediate_relation }} as ({{ sql }}) with no data;
        {%- endif %}
        -- the batch of a whole history: every symbol from its first period (rows never committed)
        {{ timescale_incremental.fill_period_batch_with_every_symbol(feed) | indent(8) }}
        insert into {{ intermediate_relation }} ({{ columns | join(', ') }})
        {{ sql }};
        delete from {{ feed.batch }};
        {% for index in config.get('indexes', []) -%}
        {{ get_create_index_sql(intermediate_relation, index) }};
        {%- endfor %}
        analyze {{ intermediate_relation }};
        {% if existing_relation is not none -%}
        alter table {{ existing_relation }} rename to {{ backup_relation.identifier }};
        {%- endif %}
        alter table {{ intermediate_relation }} rename to {{ target_relation.identifier }};
        -- the other edition's rule, if this mart was a continuous aggregate before
        drop procedure if exists {{ timescale_incremental.routine_name(this, 'refresh') }};
    {%- endcall -%}
    {%- if existing_relation is not none -%}
        {%- do adapter.cache_renamed(existing_relation, backup_relation) -%}
    {%- endif -%}
    {%- do adapter.cache_renamed(intermediate_relation, target_relation) -%}
{% endmacro %}


{#- `<mart>__apply()` (documented in macros/_macros.yml). SECURITY DEFINER with a fixed
    search_path: the caller role runs it without rights on the mart; `trade_date >= bucket
    start` lets chunk exclusion and the (symbol, time) index do the reading. -#}
{% macro period_table_apply_function(apply_function, target_relation, feed, column_names) %}
    {%- set columns = column_names | join(', ') -%}
    {%- set target_local = target_relation.include(database=False) -%}
    {%- set width = dbt.string_literal(feed.bucket_width) -%}
    select pg_advisory_xact_lock(hashtext({{ dbt.string_literal(apply_function | string) }}));
    create or replace function {{ apply_function }}()
    returns table (changes_applied bigint, periods_deleted bigint, periods_inserted bigint)
    language plpgsql
    security definer
    set search_path = pg_catalog, {{ adapter.quote(feed.extension_schema) }}, pg_temp
    as $apply$
    -- batch_from_period: the model's SQL names its batch's lower bound so (changed_period_rows)
    #variable_conflict use_variable
    declare
        batch_from_period date;
        v_watermark bigint;
        v_latest bigint;
        v_everything boolean;
    begin
        -- waits for the change log's writers in flight (none commits below v_latest later)
        perform {{ timescale_incremental.change_log_lock(feed.changes) }};
        {{ timescale_incremental.watermark_claim(feed.consumer, 'v_watermark') | indent(8) }}

        select max(c.change_id), count(*), coalesce(bool_or(c.symbol is null), false)
        into v_latest, changes_applied, v_everything
        from {{ feed.changes }} as c
        where c.change_id > v_watermark;
        if v_latest is null then
            periods_deleted := 0;
            periods_inserted := 0;
            return next;
            return;
        end if;

        -- the batch's rows never commit (create_apply_batch_table): none but this call's are seen
        delete from {{ feed.batch }};
        if v_everything then
            delete from {{ target_local }};
            get diagnostics periods_deleted = row_count;
            {{ timescale_incremental.fill_period_batch_with_every_symbol(feed) | indent(12) }}
        else
            -- Per changed symbol, the first period to recompute ('-infinity': all of them) and,
            -- where every change says which dates' values changed, only their buckets: a symbol
            -- whose changes only restated stored values is left out.
            insert into {{ feed.batch }} (symbol, from_period, periods)
            with pending as (
                select c.symbol, c.from_date, c.value_dates
                from {{ feed.changes }} as c
                where c.change_id > v_watermark and c.change_id <= v_latest
            ),
            changed_buckets as (
                select
                    pending.symbol,
                    range_agg({{ timescale_incremental.whole_buckets(feed.bucket_width, 'value_range') | indent(20) }}) as periods
                from pending
                cross join lateral unnest(pending.value_dates) as value_range
                group by pending.symbol
            ),
            per_symbol as (
                select
                    symbol,
                    case
                        when bool_or(from_date is null) then date '-infinity'
                        else time_bucket(interval {{ width }}, min(from_date))
                    end as from_period,
                    bool_or(value_dates is null) as any_date_may_have_changed
                from pending
                group by symbol
            )
            select
                per_symbol.symbol,
                per_symbol.from_period,
                case when not per_symbol.any_date_may_have_changed then changed_buckets.periods end
            from per_symbol
            left join changed_buckets on changed_buckets.symbol = per_symbol.symbol
            where per_symbol.any_date_may_have_changed or changed_buckets.periods is not null;

            delete from {{ target_local }} as mart
            using {{ feed.batch }} as changed
            where mart.symbol = changed.symbol
                and mart.period_start >= changed.from_period
                and (changed.periods is null or changed.periods @> mart.period_start);
            get diagnostics periods_deleted = row_count;
        end if;
        {{ timescale_incremental.analyze_batch(feed.batch) | indent(8) }}
        batch_from_period := (select {{ timescale_incremental.period_batch_first_day() }} from {{ feed.batch }});
        insert into {{ target_local }} ({{ columns }})
        {{ sql }};
        get diagnostics periods_inserted = row_count;
        delete from {{ feed.batch }};

        {{ timescale_incremental.watermark_advance(feed.consumer, 'v_latest') | indent(8) }}
        return next;
    end
    $apply$;
    {{ timescale_incremental.grant_to_caller(apply_function) }}
    {{ timescale_incremental.register_routine(target_relation, apply_function, 'period_table') }}
{% endmacro %}


{% macro period_feed() %}
    {%- if model.refs | length != 1 -%}
        {{ exceptions.raise_compiler_error(
            this.identifier ~ ": a period mart reads exactly one model (its change log drives the updates); it refs "
            ~ (model.refs | map(attribute='name') | join(', ') or 'none')) }}
    {%- endif -%}
    {%- set source = ref(model.refs[0]['name']) -%}
    {#- time_bucket, first and last: the apply function's search_path names their schema -#}
    {%- set extension_schema = 'public' -%}
    {%- if execute -%}
        {%- set extension_schema = run_query(
            "select extnamespace::regnamespace::text from pg_extension where extname = 'timescaledb'"
        ).columns[0].values()[0] -%}
    {%- endif -%}
    {{ return({
        'source': source,
        'changes': timescale_incremental.changes_relation(source).include(database=False),
        'batch': timescale_incremental.apply_batch(this).include(database=False),
        'consumer': this.schema ~ '.' ~ this.identifier,
        'bucket_width': config.require('bucket_width'),
        'extension_schema': extension_schema,
    }) }}
{% endmacro %}


{#- Every symbol of the source, from its first period: the batch of a whole history. -#}
{% macro fill_period_batch_with_every_symbol(feed) %}
-- distinct: a SkipScan of the (symbol, time) index where the edition has one (2.7 s -> 1.0 s)
insert into {{ feed.batch }} (symbol, from_period)
select distinct source_rows.symbol, date '-infinity'
from {{ feed.source.include(database=False) }} as source_rows;
{% endmacro %}
{#- The model's output columns, in order (parsed, not planned; dbt's query raises the error
    when something the SQL reads is missing). -#}
{% macro period_column_names() %}
    {%- if not execute -%}{{ return([]) }}{%- endif -%}
    {{ return(timescale_incremental.query_columns(sql) or get_columns_in_query(sql)) }}
{% endmacro %}


{#- True when the table's columns differ from the model's (names, in order; types where the
    contract declares them): the table is built again. -#}
{% macro period_columns_changed(relation, columns) %}
    {%- set found = adapter.get_columns_in_relation(relation) -%}
    {%- if (found | map(attribute='name') | list) != columns -%}
        {{ return(true) }}
    {%- endif -%}
    {%- if config.get('contract').enforced -%}
        {%- for column in found -%}
            {%- set declared = (model.columns.get(column.name) or {}).get('data_type') -%}
            {%- if declared and declared | lower != column.data_type | lower -%}{{ return(true) }}{%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(false) }}
{% endmacro %}


{#- Whether a relation is a TimescaleDB continuous aggregate (a view to dbt's cache). -#}
{% macro is_continuous_aggregate(relation) %}
    {%- if relation is none or not execute -%}{{ return(false) }}{%- endif -%}
    {%- set found = run_query(
        "select count(*) from timescaledb_information.continuous_aggregates where view_schema = "
        ~ dbt.string_literal(relation.schema) ~ " and view_name = " ~ dbt.string_literal(relation.identifier)
    ).columns[0].values()[0] -%}
    {{ return(found > 0) }}
{% endmacro %}


{#- Drop whatever a period mart was built as (a continuous aggregate needs DROP MATERIALIZED
    VIEW), with its routines of the other edition. -#}
{% macro drop_period_relation(relation) %}
    {%- if timescale_incremental.is_continuous_aggregate(relation) -%}
        {%- call statement('drop_period_relation', auto_begin=False) -%}
            drop materialized view if exists {{ relation }} cascade
        {%- endcall -%}
        {%- do adapter.cache_dropped(relation) -%}
    {%- else -%}
        {%- do adapter.drop_relation(relation) -%}
    {%- endif -%}
{% endmacro %}
