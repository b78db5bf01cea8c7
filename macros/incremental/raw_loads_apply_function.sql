{#- Apply strategy raw_loads, the project's own (the package README's "Apply strategies"):
    staging's prices from the loader's raw loads. Each macro documented in macros/_macros.yml. -#}
{% macro raw_loads__batch_columns() -%}
-- a feed load: symbol null, or one row per recomputed symbol it holds
load_id bigint not null,
symbol text,
recompute boolean not null
{%- endmacro %}

{#- The columns that say what a row says: all but the key and the lineage (where it came from).
    A row written again with these unchanged is logged as no change of value. -#}
{% macro raw_loads__value_columns(columns, key_columns) -%}
    {%- set lineage = ['source_row_count', 'load_id', 'line_number', 'loaded_at'] -%}
    {%- for column in lineage if column not in columns -%}
        {{ exceptions.raise_compiler_error(
            "apply strategy raw_loads: the model has no lineage column " ~ column ~ " (columns: " ~ columns | join(', ') ~ ")") }}
    {%- endfor -%}
    {{ return(columns | reject('in', key_columns) | reject('in', lineage) | list) }}
{%- endmacro %}

{% macro raw_loads__columns_of(alias, columns) -%}
    {%- for column in columns %}{{ alias }}.{{ column }}{{ ', ' if not loop.last }}{% endfor -%}
{%- endmacro %}

{#- staging's ledger of the raw loads it has applied, and the price guard's tables. -#}
{% macro raw_loads__setup_sql(relation) -%}
    create table if not exists {{ stock_analytics.applied_loads_relation() }} (
        load_id bigint primary key,
        symbol text,
        load_mode text,
        applied_at timestamptz not null
    );
    {{ timescale_incremental.create_index_if_missing(
        'stg_market_data__applied_loads_symbol_idx', stock_analytics.applied_loads_relation(), '(symbol)'
    ) }}
    {{ stock_analytics.create_price_guard_tables(relation) }}
{%- endmacro %}

{% macro raw_loads__apply_call_sql(relation, full_refresh) -%}
select * from {{ timescale_incremental.routine_name(relation, 'apply') }}(
    p_full => {{ 'true' if full_refresh else 'false' }},
    p_accept => {{ stock_analytics.accepted_held_prices() }}
)
{%- endmacro %}

{% macro raw_loads__after_apply(relation) -%}
    {%- do stock_analytics.log_held_prices() -%}
{%- endmacro %}

{% macro applied_loads_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema='staging',
                                  identifier='stg_market_data__applied_loads', type='table')) }}
{%- endmacro %}

{#- The incremental step of a model built from raw loads (staging's prices), as a PL/pgSQL
    function `<model>__apply(p_symbols, p_full)`: dbt's materialization calls it, and so can any
    other caller (the live feed), so the rules exist once.

    Which loads a build applies (its batch, which the model's SQL reads):
    - the live loads (raw.load_log status 'loaded') not yet in the applied-loads ledger, whose
      rows are upserted: per (symbol, date) the stored row stays unless the new one is newer
      (macro is_newer_row): appends and merges both come down to that;
    - every live load of a symbol whose history must be recomputed: a pending replace, or an
      applied load that is no longer live (a later load superseded it), since its rows may
      be the ones stored: the symbol's rows are deleted and built again;
    - on a full build (p_full) or a new metadata load (which can reclassify any symbol's
      asset type): every live load, the table truncated first.
    The live feed's loads (file_kind 'feed', one per micro-batch, many symbols: symbol null in
    the batch) are upserted like appends; a recomputed symbol takes its bars from every feed
    load that holds it. p_symbols (the feed's touched symbols) limits which file loads a call
    applies; its pending feed loads are every feed's, or with p_feed_paths only those feeds'.
    Before anything is written, the price guard (macros/quality/price_guard.sql) judges an
    incremental pass's bars against the accepted history: a flagged symbol's loads of the pass
    are held back (staging.stg_market_data__held_prices, with the reason), out of staging and
    the ledger, and so are its later loads until a person accepts them (p_accept: symbols, or
    '*' for all; dbt's var accept_held_prices). A full build judges nothing: every bar is
    accepted as in a first build, except the loads still held.
    What was written goes to the change log for the models fed by this one. A call with
    p_feed_paths (a Kafka consumer's partitions) is scoped: it takes the change log's lock
    shared, so consumers of different partitions apply side by side (the caller keeps two
    calls on the same partitions apart); any other takes it exclusive: a second waits, then
    finds nothing left to apply. -#}
{% macro raw_loads__apply_function_sql(relation, sql, columns, key_columns) -%}
{%- set sessions = ref(config.require('sessions')) -%}
{%- set batch = timescale_incremental.apply_batch(relation) -%}
{%- set ledger = stock_analytics.applied_loads_relation() -%}
{%- set changes = timescale_incremental.changes_relation(relation) -%}
{%- set held = stock_analytics.price_guard_relation('held_prices') -%}
{%- set baseline = stock_analytics.price_guard_relation('quality_baseline') -%}
{%- set column_list = columns | join(', ') -%}
{%- set value_columns = stock_analytics.raw_loads__value_columns(columns, key_columns) -%}
{%- set date_column = key_columns[-1] -%}
{%- set function_name = timescale_incremental.routine_name(relation, 'apply') -%}
drop function if exists {{ function_name }}(text[], boolean);
drop function if exists {{ function_name }}(text[], boolean, text[]);
drop function if exists {{ function_name }}(text[], boolean, text[], text[]);
create function {{ function_name }}(
    p_symbols text[] default null,
    p_full boolean default false,
    p_accept text[] default null,
    -- scoped: only these feeds' pending loads (raw.load_log.file_path)
    p_feed_paths text[] default null
)
returns table (loads_applied bigint, symbols_recomputed bigint, rows_written bigint, symbols_held bigint)
language plpgsql
-- The live feed's role runs it (EXECUTE granted by name) without rights on the table itself.
security definer
set search_path = pg_catalog, pg_temp
-- A batch is applied in bulk: hash joins. (The planner cannot estimate how many parsed rows
-- are usable, guesses a handful, and would otherwise join the symbols metadata by a nested
-- loop that re-reads it for every raw row: minutes instead of seconds.)
set enable_nestloop = off
-- and sorts (the newest row per date) in memory where they fit
set work_mem = '256MB'
-- No JIT: compiling the generated expressions costs seconds, more than a batch of a day saves.
set jit = off
as $apply$
-- The model's SQL names its batch's ids batch_load_ids, a column of its batch CTE: here that name
-- is this variable (the same ids), which the planner sees as a constant.
#variable_conflict use_variable
declare
    v_full boolean := p_full;
    v_scoped boolean := p_feed_paths is not null and not p_full;
    v_rows bigint := 0;
    v_held bigint := 0;
    v_loads bigint;
    v_recomputed_count bigint;
    v_recomputed text[] := array[]::text[];
    v_unjudged text[] := array[]::text[];
    batch_load_ids bigint[];
    v_first_day date;
    v_last_day date;
    v_batch_symbols text[];
begin
    {{ timescale_incremental.lock_change_log_for_writing(changes, 'v_scoped') | indent(4) }}
    perform {{ timescale_incremental.allow_dml_on_compressed_chunks() }};
    -- the batch's rows never commit (create_apply_batch_table): none but a call's own are seen
    delete from {{ batch }};
    {{ stock_analytics.create_session_ordinals(sessions) | indent(4) }}
    -- the guard's work tables (dropped at commit; a second call in one transaction starts anew)
    drop table if exists pg_temp.price_guard_batch_rows, pg_temp.price_guard_staged, pg_temp.price_guard_history, pg_temp.price_guard_bars,
        pg_temp.price_guard_runs, pg_temp.price_guard_verdicts, pg_temp.recomputed_vanished_dates;

    -- Holds a person accepted: applied by this pass without judging.
    update {{ held }}
    set accepted_at = now()
    where accepted_at is null and (symbol = any(p_accept) or '*' = any(p_accept));
    v_unjudged := array(select distinct symbol from {{ held }} where accepted_at is not null and applied_at is null);

    if not v_full and p_symbols is null then
        v_full := exists (
            select from raw.load_log as load_log
            where {{ stock_analytics.is_live_load('load_log') }}
                and load_log.file_kind = 'symbols'
                and not exists (select from {{ ledger }} as applied where applied.load_id = load_log.load_id)
        )
        -- a warehouse built before the guard kept its baseline: rebuilt once, as a first build
        or (not exists (select from {{ baseline }}) and exists (select from {{ relation }}));
    end if;

    if v_full then
        truncate {{ relation }};
        truncate {{ ledger }};
        insert into {{ batch }} (load_id, symbol, recompute)
        select load_log.load_id, load_log.symbol, true
        from raw.load_log as load_log
        where {{ stock_analytics.is_live_load('load_log') }} and load_log.file_kind in ('prices', 'feed')
            -- a held file load stays out until accepted (a held feed bar: below)
            and not exists (
                select from {{ held }} as holding
                where holding.load_id = load_log.load_id and load_log.file_kind = 'prices'
                    and {{ stock_analytics.is_open_hold('holding') }}
            );
    else
        insert into {{ batch }} (load_id, symbol, recompute)
        with pending as (
            select load_log.load_id, load_log.symbol, load_log.load_mode
            from raw.load_log as load_log
            where {{ stock_analytics.is_live_load('load_log') }}
                and load_log.file_kind in ('prices', 'feed')
                and (
                    p_symbols is null or load_log.symbol = any(p_symbols)
                    or (load_log.file_kind = 'feed' and (p_feed_paths is null or load_log.file_path = any(p_feed_paths)))
                )
                and not exists (select from {{ ledger }} as applied where applied.load_id = load_log.load_id)
        ),

        recomputed_symbols as (
            select symbol from pending where load_mode = 'replace'
            union
            select applied.symbol
            from {{ ledger }} as applied
            inner join raw.load_log as load_log on applied.load_id = load_log.load_id
            where not ({{ stock_analytics.is_live_load('load_log') }})
                and (p_symbols is null or applied.symbol = any(p_symbols))
        )

        select load_id, symbol, false
        from pending
        -- a feed load (symbol null) is upserted whole
        where symbol is null or symbol not in (select symbol from recomputed_symbols)
        union all
        select load_log.load_id, load_log.symbol, true
        from raw.load_log as load_log
        where {{ stock_analytics.is_live_load('load_log') }}
            and load_log.file_kind = 'prices'
            and load_log.symbol in (select symbol from recomputed_symbols)
        union all
        -- the feed loads holding a recomputed symbol (the model keeps those after its last
        -- replace; their other symbols' bars are older than or equal to what is stored)
        select distinct feed_bars.load_id, feed_bars.symbol, true
        from raw.feed_bars as feed_bars
        inner join raw.load_log as load_log on feed_bars.load_id = load_log.load_id
        where {{ stock_analytics.is_live_load('load_log') }}
            and feed_bars.symbol in (select symbol from recomputed_symbols)
        union all
        -- accepted feed bars held back earlier (their loads are in the ledger)
        select holding.load_id, holding.symbol, false
        from {{ held }} as holding
        inner join raw.load_log as load_log on holding.load_id = load_log.load_id
        where holding.accepted_at is not null and holding.applied_at is null
            and load_log.file_kind = 'feed' and {{ stock_analytics.is_live_load('load_log') }}
            and (not v_scoped or holding.symbol = any(p_symbols));

        -- A symbol with a hold nobody accepted waits: its new file loads are held behind it.
        insert into {{ held }} (load_id, symbol, finding, reason, first_date, last_date)
        select batch.load_id, batch.symbol, 'waiting',
            format('waits for the held load %s of %s (accept that one to apply both)', earlier.load_id, batch.symbol),
            null, null
        from {{ batch }} as batch
        cross join lateral (
            select holding.load_id from {{ held }} as holding
            where holding.symbol = batch.symbol and holding.load_id <> batch.load_id
                and {{ stock_analytics.is_open_hold('holding') }}
            order by holding.load_id
            limit 1
        ) as earlier
        on conflict (load_id, symbol) do nothing;
        delete from {{ batch }} as batch
        where exists (
            select from {{ held }} as holding
            where holding.symbol = batch.symbol and holding.load_id = batch.load_id
                and {{ stock_analytics.is_open_hold('holding') }}
        );

        -- An array, not a subquery: TimescaleDB then decompresses only those symbols' segments.
        v_recomputed := array(select distinct symbol from {{ batch }} where recompute);
    end if;
    {{ timescale_incremental.analyze_batch(batch, 'v_scoped') | indent(4) }}
    batch_load_ids := array(select distinct load_id from {{ batch }} order by load_id);

    if v_full then
        with written as (
            insert into {{ relation }} as stored ({{ column_list }})
            select {{ column_list }} from (
{{ sql }}
            ) as batch_rows
            -- a held feed bar stays out until accepted
            where not exists (
                select from {{ held }} as holding
                where holding.load_id = batch_rows.load_id and holding.symbol = batch_rows.symbol
                    and {{ stock_analytics.is_open_hold('holding') }}
            )
            returning 1
        )

        select count(*) into v_rows from written;
        insert into {{ changes }} (symbol, from_date) values (null, null);
        v_recomputed_count := (select count(distinct symbol) from {{ batch }});
        {{ stock_analytics.price_guard_rebuild(relation) | indent(8) }}
    else
        -- What the pass would write: the new bars, and the stored ones they replace. The new
        -- bars first, on their own, for their dates and symbols: the stored ones are looked for
        -- in the chunks of those dates only and by the symbols' index entries (constants, so the
        -- planner sees them), not in all of staging (a live step's one day, or one symbol's
        -- corrected history of every year, hashed every stored bar: 10 s at Kaggle scale).
        create temporary table pg_temp.price_guard_batch_rows on commit drop as
        select * from (
{{ sql }}
        ) as batch_rows;
        {{ timescale_incremental.analyze_in_routine('pg_temp.price_guard_batch_rows') }}
        select min(trade_date), max(trade_date), array_agg(distinct symbol)
        into v_first_day, v_last_day, v_batch_symbols
        from pg_temp.price_guard_batch_rows;
        execute format(
            'create temporary table pg_temp.price_guard_staged on commit drop as
            select
                batch_rows.*,
                stored.symbol is not null as was_stored,
                -- a bar a merged file states again as stored: written (the newer load), but no news
                stored.symbol is not null
                    and (batch_rows.close, batch_rows.volume) is not distinct from (stored.close, stored.volume)
                    as restated,
                stored.load_id as stored_load_id,
                -- every value as stored (only the lineage differs): no change to what it says
                stored.symbol is not null
                    and ({{ stock_analytics.raw_loads__columns_of('batch_rows', value_columns) }})
                    is not distinct from ({{ stock_analytics.raw_loads__columns_of('stored', value_columns) }})
                    as values_restated
            from pg_temp.price_guard_batch_rows as batch_rows
            left join {{ relation }} as stored
                on batch_rows.symbol = stored.symbol and batch_rows.trade_date = stored.trade_date
                and stored.trade_date between %L and %L
                and stored.symbol = any(%L::text[])
            where stored.symbol is null
                or batch_rows.symbol = any($1)
                or {{ stock_analytics.is_newer_row('batch_rows', 'stored') }}',
            v_first_day, v_last_day, v_batch_symbols
        ) using v_recomputed;
        drop table pg_temp.price_guard_batch_rows;

        -- A feed bar of a symbol with a hold nobody accepted waits behind it.
        insert into {{ held }} (load_id, symbol, finding, reason, first_date, last_date)
        select staged.load_id, staged.symbol, 'waiting',
            format('waits for the held load %s of %s (accept that one to apply both)', min(holding.load_id), staged.symbol),
            min(staged.trade_date), max(staged.trade_date)
        from pg_temp.price_guard_staged as staged
        inner join {{ held }} as holding
            on staged.symbol = holding.symbol and {{ stock_analytics.is_open_hold('holding') }}
        where holding.load_id <> staged.load_id
        group by staged.load_id, staged.symbol
        on conflict (load_id, symbol) do nothing;
        delete from pg_temp.price_guard_staged as staged
        where exists (
            select from {{ held }} as holding
            where holding.symbol = staged.symbol and {{ stock_analytics.is_open_hold('holding') }}
        );
        {{ timescale_incremental.analyze_in_routine('pg_temp.price_guard_staged') }}

        {{ stock_analytics.price_guard_judge(relation, stock_analytics.price_guard_threshold()) | indent(8) }}

        -- The flagged symbols' loads of this pass are held back, with every reason found.
        insert into {{ held }} (load_id, symbol, finding, reason, first_date, last_date)
        select loads.load_id, verdicts.symbol, verdicts.findings, verdicts.reasons, verdicts.first_date, verdicts.last_date
        from (
            select
                symbol,
                string_agg(distinct finding, ', ') as findings,
                string_agg(reason, '; ' order by finding, first_date) as reasons,
                min(first_date) as first_date,
                max(last_date) as last_date
            from pg_temp.price_guard_verdicts
            group by symbol
        ) as verdicts
        inner join (
            select distinct symbol, load_id from pg_temp.price_guard_staged
        ) as loads on verdicts.symbol = loads.symbol
        on conflict (load_id, symbol) do update set
            finding = excluded.finding, reason = excluded.reason,
            first_date = excluded.first_date, last_date = excluded.last_date, held_at = now();
        get diagnostics v_held = row_count;
        delete from pg_temp.price_guard_staged where symbol in (select symbol from pg_temp.price_guard_verdicts);
        -- a held file load is not applied: it stays pending, out of the ledger
        delete from {{ batch }} as batch
        where batch.symbol in (select symbol from pg_temp.price_guard_verdicts)
            and exists (
                select from raw.load_log as load_log
                where load_log.load_id = batch.load_id and load_log.file_kind = 'prices'
            );
        v_recomputed := array(
            select symbol from unnest(v_recomputed) as recomputed (symbol)
            where symbol not in (select symbol from pg_temp.price_guard_verdicts)
        );

        v_recomputed_count := cardinality(v_recomputed);
        -- A recomputed symbol is written whole (its lineage moves to the live loads), but its
        -- values change only where the new history differs from the stored one: the staged
        -- rows not restated (below) and the stored dates the new history no longer has.
        create temporary table pg_temp.recomputed_vanished_dates on commit drop as
        select stored.symbol, stored.{{ date_column }} as changed_date
        from {{ relation }} as stored
        where stored.symbol = any(v_recomputed)
            and not exists (
                select from pg_temp.price_guard_staged as fresh
                where fresh.symbol = stored.symbol and fresh.{{ date_column }} = stored.{{ date_column }}
            );
        delete from {{ relation }} where symbol = any(v_recomputed);
        delete from {{ ledger }} where symbol = any(v_recomputed);

        with written as (
            insert into {{ relation }} as stored ({{ column_list }})
            select {{ column_list }} from pg_temp.price_guard_staged
            on conflict ({{ key_columns | join(', ') }}) do update set
                {%- for column in columns if column not in key_columns %}
                {{ column }} = excluded.{{ column }}{{ ',' if not loop.last }}
                {%- endfor %}
            where {{ stock_analytics.is_newer_row('excluded', 'stored') }}
            returning stored.symbol, stored.{{ key_columns[-1] }} as changed_date
        ),

        touched as (
            select
                written.symbol,
                min(written.changed_date) as from_date,
                count(*) as row_count,
                -- the dates whose values changed (a restated bar's lineage only moved)
                coalesce(
                    range_agg(daterange(written.changed_date, written.changed_date, '[]'))
                        filter (where not staged.values_restated),
                    '{}'
                ) as value_dates
            from written
            inner join pg_temp.price_guard_staged as staged
                on written.symbol = staged.symbol and written.changed_date = staged.{{ date_column }}
            group by written.symbol
        ),

        recomputed as (
            select
                recomputed.symbol,
                (
                    select range_agg(daterange(vanished.changed_date, vanished.changed_date, '[]'))
                    from pg_temp.recomputed_vanished_dates as vanished
                    where vanished.symbol = recomputed.symbol
                ) as vanished_dates
            from unnest(v_recomputed) as recomputed (symbol)
        ),

        logged as (
            -- from the first changed date; the whole symbol (null) when recomputed, new, or
            -- changed from its first stored date on: the models fed by it then do not look for
            -- stored rows before that date (a probe that finds none visits every chunk)
            insert into {{ changes }} (symbol, from_date, value_dates)
            select
                coalesce(touched.symbol, recomputed.symbol),
                case when recomputed.symbol is null and touched.from_date > history.first_date then touched.from_date end,
                coalesce(touched.value_dates, '{}') + coalesce(recomputed.vanished_dates, '{}')
            from touched
            full outer join recomputed on touched.symbol = recomputed.symbol
            left join pg_temp.price_guard_history as history on touched.symbol = history.symbol
            returning 1
        )

        select coalesce(sum(row_count), 0) into v_rows from touched;

        {{ stock_analytics.price_guard_record() | indent(8) }}
    end if;

    -- Holds this pass applied (a person accepted them).
    update {{ held }} as holding
    set applied_at = now()
    where holding.accepted_at is not null and holding.applied_at is null
        and (holding.load_id in (select load_id from {{ batch }}) or v_full);

    insert into {{ ledger }} (load_id, symbol, load_mode, applied_at)
    select load_log.load_id, load_log.symbol, load_log.load_mode, now()
    from raw.load_log as load_log
    where load_log.load_id in (select load_id from {{ batch }})
        or (
            load_log.file_kind = 'symbols'
            and {{ stock_analytics.is_live_load('load_log') }}
            and p_symbols is null
        )
    on conflict (load_id) do nothing;

    v_loads := (select count(distinct load_id) from {{ batch }});
    delete from {{ batch }};
    return query select v_loads, v_recomputed_count, v_rows, v_held;
end
$apply$;
{%- endmacro %}
