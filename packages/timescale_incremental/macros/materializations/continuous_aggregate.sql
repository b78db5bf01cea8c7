{#- materialized='continuous_aggregate' (documented in macros/_macros.yml). Why the statements
    run with auto_begin=False: refresh_continuous_aggregate refuses a transaction block, so the
    profile is in autocommit mode (`autocommit: true`, dbt-postgres >= 1.11). -#}
{% materialization continuous_aggregate, adapter='postgres' %}
    {%- if not timescale_incremental.builds_as_continuous_aggregate(log_skip=true) -%}
        {{ return(timescale_incremental.build_period_table()) }}
    {%- endif -%}
    {%- if not target.get('autocommit', false) -%}
        {{ exceptions.raise_compiler_error(
            this.identifier ~ ": a continuous aggregate is refreshed outside a transaction block; set `autocommit: true` "
            ~ "in the profile (dbt-postgres >= 1.11), or build the period marts as tables with "
            ~ "--vars '{use_continuous_aggregates: false}'") }}
    {%- endif -%}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='view') -%}
    {%- set feed = timescale_incremental.period_feed() -%}
    {%- set refresh_procedure = timescale_incremental.routine_name(this, 'refresh') -%}
    {%- set is_aggregate = timescale_incremental.is_continuous_aggregate(existing_relation) -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}

    {%- set reads_another_model = is_aggregate and timescale_incremental.watermark_counts_another_log(feed.consumer, feed.changes) -%}
    {%- if existing_relation is none or not is_aggregate or should_full_refresh() or reads_another_model -%}
        {%- do log(this ~ ": creating the continuous aggregate ("
                   ~ ('first build' if existing_relation is none else 'it was built as a table' if not is_aggregate
                      else 'full refresh' if should_full_refresh() else 'it reads another model than when it was built')
                   ~ ")", info=true) -%}
        {%- if existing_relation is not none -%}
            {%- do timescale_incremental.drop_period_relation(existing_relation) -%}
        {%- endif -%}
        {%- if config.get('contract').enforced -%}
            {{ get_assert_columns_equivalent(sql) }}
        {%- endif -%}
        {%- call statement('create_continuous_aggregate', auto_begin=False) -%}
            create materialized view {{ target_relation }}
            with (timescaledb.continuous, timescaledb.materialized_only = false)
            as {{ sql }}
            with no data
        {%- endcall -%}
        {#- The watermark before the data: a change committed meanwhile is refreshed again. -#}
        {%- call statement('reset_watermark', auto_begin=False) -%}
            {{ timescale_incremental.watermark_reset_to_latest(feed.consumer, feed.changes) | indent(12) }}
        {%- endcall -%}
        {%- call statement('initial_refresh', auto_begin=False) -%}
            call refresh_continuous_aggregate({{ dbt.string_literal(target_relation | string) }}, null, null)
        {%- endcall -%}
        {%- call statement('drop_table_routine', auto_begin=False) -%}
            drop function if exists {{ timescale_incremental.routine_name(this, 'apply') }}()
        {%- endcall -%}
    {%- endif -%}

    {%- call statement('refresh_procedure', auto_begin=False) -%}
        {{ timescale_incremental.continuous_aggregate_refresh_procedure(refresh_procedure, target_relation, feed) }}
    {%- endcall -%}
    {%- call statement('main', fetch_result=True, auto_begin=False) -%}
        call {{ refresh_procedure }}()
    {%- endcall -%}
    {%- set refreshed = load_result('main').table.rows[0] -%}
    {%- do log(this ~ ": " ~ refreshed['changes_applied'] ~ " changes of " ~ feed.source.identifier ~ " pending"
               ~ ((", " ~ refreshed['windows_refreshed'] ~ " windows refreshed"
                   ~ ((", from " ~ (refreshed['refreshed_from'] or 'the start')) if refreshed['windows_refreshed'] else " (no value changed)"))
                  if refreshed['changes_applied'] else ""),
               info=true) -%}

    {%- do apply_grants(target_relation, config.get('grants'), should_revoke=False) -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- `<mart>__refresh()` (documented in macros/_macros.yml). A procedure, because only a
    procedure may commit around the refresh; not SECURITY DEFINER, because such a procedure may
    not commit (so the caller must own the aggregate, as TimescaleDB requires anyway). -#}
{% macro continuous_aggregate_refresh_procedure(refresh_procedure, target_relation, feed) %}
    {%- set lock_key = "hashtext(" ~ dbt.string_literal(refresh_procedure | string) ~ ")" -%}
    {%- set ts = adapter.quote(feed.extension_schema) -%}
    -- two builds at once: replace the procedure one after the other
    select pg_advisory_xact_lock({{ lock_key }});
    -- a release before windows_refreshed: its signature, or the name would be ambiguous
    drop procedure if exists {{ refresh_procedure }}(bigint, date);
    create or replace procedure {{ refresh_procedure }}(
        inout changes_applied bigint default null,
        inout refreshed_from date default null,
        inout windows_refreshed bigint default null
    )
    language plpgsql
    as $refresh$
    declare
        v_watermark bigint;
        v_latest bigint;
        v_everything boolean;
        v_starts date[];
        v_ends date[];
    begin
        perform pg_catalog.pg_advisory_lock({{ lock_key }});
        -- waits for the change log's writers in flight (none commits below v_latest later)
        perform {{ timescale_incremental.change_log_lock(feed.changes) }};
        -- the advisory lock serializes callers: no row lock held across the commits below
        {{ timescale_incremental.watermark_claim(feed.consumer, 'v_watermark', lock=false) | indent(8) }}

        select
            max(c.change_id),
            count(*),
            coalesce(bool_or(c.symbol is null or (c.from_date is null and c.value_dates is null)), false)
        into v_latest, changes_applied, v_everything
        from {{ feed.changes }} as c
        where c.change_id > v_watermark;

        -- The refresh windows: the buckets of the dates whose values changed (value_dates),
        -- else from from_date on, merged where they overlap or touch. TimescaleDB logs a
        -- write as the time range it spans whatever the symbol; a window re-aggregates the
        -- buckets it covers for every symbol, so a corrected old bar costs its bucket, not
        -- everything after it. Rows written again with the same values (value_dates empty)
        -- leave their range logged and not refreshed: its buckets would come out the same.
        if v_everything then
            v_starts := array[null::date];
            v_ends := array[null::date];
        else
            -- range_agg merges the windows that overlap or touch
            with spans as (
                select value_range
                from {{ feed.changes }} as c
                cross join lateral unnest(c.value_dates) as value_range
                where c.change_id > v_watermark
                union all
                select daterange(c.from_date, null)
                from {{ feed.changes }} as c
                where c.change_id > v_watermark and c.value_dates is null
            ),

            windows as (
                select range_agg({{ timescale_incremental.whole_buckets(feed.bucket_width, 'value_range', ts) | indent(16) }}) as merged
                from spans
            )

            select
                coalesce(array_agg(lower(window_range) order by lower(window_range)), '{}'),
                coalesce(array_agg(upper(window_range) order by lower(window_range)), '{}')
            into v_starts, v_ends
            from windows
            cross join lateral unnest(windows.merged) as window_range;
        end if;
        refreshed_from := v_starts[1];
        windows_refreshed := cardinality(v_starts);

        if v_latest is not null then
            for window_number in 1 .. cardinality(v_starts) loop
                commit;
                call {{ ts }}.refresh_continuous_aggregate(
                    {{ dbt.string_literal(target_relation.include(database=False) | string) }},
                    v_starts[window_number], v_ends[window_number]
                );
            end loop;
            {{ timescale_incremental.watermark_advance(feed.consumer, 'v_latest') | indent(12) }}
            commit;
        end if;
        perform pg_catalog.pg_advisory_unlock({{ lock_key }});
    end
    $refresh$;
    {{ timescale_incremental.grant_to_caller(refresh_procedure, 'procedure') }}
    {{ timescale_incremental.register_routine(target_relation, refresh_procedure, 'continuous_aggregate', 'procedure') }}
{% endmacro %}
