{#- Apply strategy upstream_changes (documented in macros/_macros.yml): a model fed by another
    incremental model's change log (config changes_of) recomputes each changed symbol from its
    first changed date. -#}
{% macro upstream_changes__batch_columns() -%}
symbol text primary key,
from_date date
{%- endmacro %}

{% macro upstream_changes__apply_call_sql(relation, full_refresh) -%}
select * from {{ timescale_incremental.routine_name(relation, 'apply') }}(p_full => {{ 'true' if full_refresh else 'false' }})
{%- endmacro %}

{% macro upstream_changes__apply_function_sql(relation, sql, columns, key_columns) -%}
{%- set upstream = ref(config.require('changes_of')) -%}
{%- set time_column = key_columns[-1] -%}
{%- set consumer = relation.schema ~ '.' ~ relation.identifier -%}
{%- set batch = timescale_incremental.apply_batch(relation) -%}
{%- set upstream_changes = timescale_incremental.changes_relation(upstream) -%}
{%- set changes = timescale_incremental.changes_relation(relation) -%}
{%- set column_list = columns | join(', ') -%}
{%- set taken = timescale_incremental.taken_relation() -%}
{%- set untaken -%}
not exists (
            select from {{ taken }} as taken
            where taken.consumer = {{ dbt.string_literal(consumer) }} and taken.change_id = upstream_row.change_id
        )
{%- endset -%}
drop function if exists {{ timescale_incremental.routine_name(relation, 'apply') }}(boolean);
create or replace function {{ timescale_incremental.routine_name(relation, 'apply') }}(
    p_full boolean default false,
    -- scoped: only the changes these (committed) transactions wrote
    p_writer_xids xid8[] default null
)
returns table (symbols_changed bigint, rows_written bigint)
language plpgsql
-- The live feed's role runs it (EXECUTE granted by name) without rights on the tables.
security definer
set search_path = pg_catalog, pg_temp
-- A full build numbers every symbol's days in one sort: in memory where it fits.
set work_mem = '256MB'
-- No JIT: compiling the generated expressions costs seconds, more than a batch of a day saves.
set jit = off
as $apply$
declare
    v_from bigint;
    v_to bigint;
    v_everything boolean;
    v_rows bigint;
    v_symbols bigint;
    v_change record;
    v_first_date date;
    v_whole_symbols boolean;
    v_deleted_symbols text[] := '{}';
    v_deleted_firsts date[] := '{}';
    v_written_symbols text[] := '{}';
    v_written_firsts date[] := '{}';
    v_whole_rows bigint;
    v_written_rows bigint;
    v_hashjoin text;
    v_mergejoin text;
    v_scoped boolean := p_writer_xids is not null and not p_full;
begin
    perform {{ timescale_incremental.allow_dml_on_compressed_chunks() }};
    -- the batch's rows never commit (create_apply_batch_table): none but a call's own are seen
    delete from {{ batch }};
    {{ timescale_incremental.lock_change_log_for_writing(changes, 'v_scoped') | indent(4) }}
    if v_scoped then
        -- The changes the caller's transactions wrote, taken now and skipped by the next
        -- unscoped call; symbols the caller keeps apart from concurrent scoped calls.
        with callers_changes as (
            select change_id, symbol, from_date
            from {{ upstream_changes }} as upstream_row
            where writer_xid = any(p_writer_xids) and symbol is not null and {{ untaken }}
        ),
        recorded as (
            insert into {{ taken }} (consumer, change_id)
            select {{ dbt.string_literal(consumer) }}, change_id from callers_changes
            on conflict do nothing
        )
        {{ timescale_incremental.upstream_changes__fill_batch(batch, 'callers_changes') | indent(8) }};
        v_everything := false;
    else
        -- waits for the upstream's writers in flight, so none commits a change below v_to later
        perform {{ timescale_incremental.change_log_lock(upstream_changes) }};
        {{ timescale_incremental.watermark_claim(consumer, 'v_from') | indent(8) }}
        select coalesce(max(change_id), v_from) into v_to from {{ upstream_changes }};
        v_everything := p_full or exists (
            select from {{ upstream_changes }} as upstream_row
            where change_id > v_from and change_id <= v_to and symbol is null and {{ untaken }}
        );
        if not v_everything then
            with pending_changes as (
                select symbol, from_date
                from {{ upstream_changes }} as upstream_row
                where change_id > v_from and change_id <= v_to and {{ untaken }}
            )
            {{ timescale_incremental.upstream_changes__fill_batch(batch, 'pending_changes') | indent(12) }};
        end if;
        delete from {{ taken }} where consumer = {{ dbt.string_literal(consumer) }} and change_id <= v_to;
    end if;

    if v_everything then
        truncate {{ relation }};
        insert into {{ batch }} (symbol, from_date)
        select distinct symbol, null::date from {{ upstream }};
    else
        {%- if config.get('resume_when') %}
        -- State carried from day to day (config resume_when): a symbol goes on from its last
        -- stored row before its first changed date only where that row meets the condition;
        -- any other is computed again from its first row.
        update {{ batch }} as changed
        set from_date = null
        where changed.from_date is not null
            and not exists (
                select from (
                    select * from {{ relation }} as stored
                    where stored.symbol = changed.symbol
                        and stored.{{ time_column }} < changed.from_date
                    order by stored.{{ time_column }} desc
                    limit 1
                ) as resume_row
                where {{ config.get('resume_when') }}
            );
        {%- endif %}
        -- Symbols with a first changed date are deleted from it, with the earliest as a constant
        -- bound; a symbol computed again whole (null from_date) on its own below, so that one
        -- new listing in a daily batch does not make the delete read all of history.
        v_first_date := (select coalesce(min(from_date), 'infinity') from {{ batch }});
        v_whole_symbols := exists (select from {{ batch }} where from_date is null);
        if v_whole_symbols then
            -- their first stored dates, for the change log (not RETURNING: on a hypertable's
            -- delete it costs seconds a thousand rows)
            {{ timescale_incremental.upstream_changes__whole_symbols_first_dates(relation, batch, time_column, 'v_deleted_symbols', 'v_deleted_firsts', 'v_whole_rows') | indent(12) }}
        end if;
        if exists (
            select from timescaledb_information.chunks as chunk
            where chunk.hypertable_schema = '{{ relation.schema }}'
                and chunk.hypertable_name = '{{ relation.identifier }}'
                and chunk.is_compressed
                and chunk.range_end > case when v_whole_symbols then '-infinity' else v_first_date end
        ) then
            -- Symbol by symbol: a compressed chunk then decompresses only that symbol's segment.
            for v_change in select symbol, from_date from {{ batch }} loop
                delete from {{ relation }}
                where symbol = v_change.symbol
                    and {{ time_column }} >= coalesce(v_change.from_date, '-infinity');
            end loop;
        else
            -- One statement (a statement per symbol costs a millisecond each: seconds for the
            -- live feed's thousands of symbols a batch); the first date as a constant, so the
            -- chunks before it are excluded when the statement is planned.
            execute format(
                'delete from {{ relation }} as stored using {{ batch }} as changed
                where stored.symbol = changed.symbol
                    and stored.{{ time_column }} >= changed.from_date
                    and stored.{{ time_column }} >= %L',
                v_first_date
            );
            if v_whole_symbols then
                -- By the (symbol, time) index when their rows are a small part of the table
                -- (counted above): the planner estimates them from the average symbol, and a
                -- few short new listings then cost a scan of every chunk.
                if v_whole_rows * 100 < (
                    select coalesce(sum(greatest(part.reltuples, 0)), 0)
                    from pg_catalog.pg_class as part
                    where part.oid = '{{ relation.include(database=False) }}'::regclass
                        or part.oid in (
                            select inherited.inhrelid from pg_catalog.pg_inherits as inherited
                            where inherited.inhparent = '{{ relation.include(database=False) }}'::regclass
                        )
                ) then
                    v_hashjoin := current_setting('enable_hashjoin');
                    v_mergejoin := current_setting('enable_mergejoin');
                    perform set_config('enable_hashjoin', 'off', true);
                    perform set_config('enable_mergejoin', 'off', true);
                end if;
                -- dynamic, so it is planned with the settings of this call, and with their
                -- earliest stored date (counted above) as a constant: the chunks before it are
                -- excluded when it is planned
                execute format(
                    'delete from {{ relation }} as stored using {{ batch }} as changed
                    where stored.symbol = changed.symbol
                        and changed.from_date is null
                        and stored.{{ time_column }} >= %L',
                    (select coalesce(min(first_date), 'infinity') from unnest(v_deleted_firsts) as firsts (first_date))
                );
                if v_hashjoin is not null then
                    perform set_config('enable_hashjoin', v_hashjoin, true);
                    perform set_config('enable_mergejoin', v_mergejoin, true);
                end if;
            end if;
        end if;
    end if;
    {{ timescale_incremental.analyze_batch(batch, 'v_scoped') | indent(4) }}

    insert into {{ relation }} ({{ column_list }})
    select {{ column_list }} from (
{{ sql }}
    ) as batch_rows;
    get diagnostics v_rows = row_count;
    {%- if timescale_incremental.carried_windows_config() is not none %}
    {{ timescale_incremental.keep_carried_windows(relation, batch, time_column, 'v_everything') | indent(4) }}
    {%- endif %}
    if v_whole_symbols then
        {{ timescale_incremental.upstream_changes__whole_symbols_first_dates(relation, batch, time_column, 'v_written_symbols', 'v_written_firsts', 'v_written_rows') | indent(8) }}
    end if;

    if v_everything then
        insert into {{ changes }} (symbol, from_date) values (null, null);
    else
        -- A symbol computed again whole is logged from its first row before or after, not as
        -- null: a real lower bound for the models this log feeds (null: no row either way).
        insert into {{ changes }} (symbol, from_date)
        select
            changed.symbol,
            coalesce(changed.from_date, least(deleted.first_date, written.first_date))
        from {{ batch }} as changed
        left join unnest(v_deleted_symbols, v_deleted_firsts) as deleted (symbol, first_date)
            on deleted.symbol = changed.symbol
        left join unnest(v_written_symbols, v_written_firsts) as written (symbol, first_date)
            on written.symbol = changed.symbol;
    end if;
    if not v_scoped then
        {{ timescale_incremental.watermark_advance(consumer, 'v_to') | indent(8) }}
    end if;

    v_symbols := (select count(*) from {{ batch }});
    delete from {{ batch }};
    return query select v_symbols, v_rows;
end
$apply$;
{%- endmacro %}


{#- An INSERT (after the caller's WITH) of each changed symbol of `changed_rows` (a CTE of
    change-log rows) into the batch with its earliest from_date: null if any of its changes is
    (the symbol computed again from its first row). -#}
{% macro upstream_changes__fill_batch(batch, changed_rows) -%}
insert into {{ batch }} (symbol, from_date)
select symbol, case when bool_or(from_date is null) then null else min(from_date) end
from {{ changed_rows }}
group by symbol
{%- endmacro %}


{#- The first stored date of each batch symbol computed again whole (null from_date), into two
    array variables of the apply function, and the count of their stored rows into a third. -#}
{% macro upstream_changes__whole_symbols_first_dates(relation, batch, time_column, symbols_variable, dates_variable, rows_variable) -%}
select coalesce(array_agg(symbol), '{}'), coalesce(array_agg(first_date), '{}'), coalesce(sum(stored_rows), 0)
into {{ symbols_variable }}, {{ dates_variable }}, {{ rows_variable }}
from (
    select stored.symbol, min(stored.{{ time_column }}) as first_date, count(*) as stored_rows
    from {{ relation }} as stored
    inner join {{ batch }} as changed
        on changed.symbol = stored.symbol
        and changed.from_date is null
    group by stored.symbol
) as firsts;
{%- endmacro %}
