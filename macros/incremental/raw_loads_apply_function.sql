{#- The incremental step of a model built from raw loads (staging's prices), as a PL/pgSQL
    function `<model>__apply(p_symbols, p_full)`: dbt's materialization calls it, and so can any
    other caller (the live feed), so the rules exist once.

    Which loads a build applies (the model's SQL reads them from apply_batch()):
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
    applies; pending feed loads are always applied.
    What was written goes to the change log for the models fed by this one. One apply at a
    time (an advisory lock): a second build waits, then finds nothing left to apply. -#}
{% macro raw_loads_apply_function(relation, sql, columns, key_columns) -%}
{%- set batch = stock_analytics.apply_batch() -%}
{%- set ledger = stock_analytics.applied_loads_relation() -%}
{%- set changes = stock_analytics.changes_relation(relation) -%}
{%- set column_list = columns | join(', ') -%}
create or replace function {{ stock_analytics.apply_function_name(relation) }}(
    p_symbols text[] default null,
    p_full boolean default false
)
returns table (loads_applied bigint, symbols_recomputed bigint, rows_written bigint)
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
declare
    v_full boolean := p_full;
    v_rows bigint := 0;
    v_recomputed text[];
    {{ stock_analytics.batch_load_ids() }} bigint[];
begin
    perform pg_advisory_xact_lock(hashtext('{{ relation.schema }}.{{ relation.identifier }}'));
    perform {{ stock_analytics.allow_dml_on_compressed_chunks() }};
    {{ stock_analytics.create_apply_batch_table('raw_loads', on_commit_drop=true) }}
    truncate {{ batch }};

    if not v_full and p_symbols is null then
        v_full := exists (
            select from raw.load_log as load_log
            where {{ stock_analytics.is_live_load('load_log') }}
                and load_log.file_kind = 'symbols'
                and not exists (select from {{ ledger }} as applied where applied.load_id = load_log.load_id)
        );
    end if;

    if v_full then
        truncate {{ relation }};
        truncate {{ ledger }};
        insert into {{ batch }} (load_id, symbol, recompute)
        select load_log.load_id, load_log.symbol, true
        from raw.load_log as load_log
        where {{ stock_analytics.is_live_load('load_log') }} and load_log.file_kind in ('prices', 'feed');
    else
        insert into {{ batch }} (load_id, symbol, recompute)
        with pending as (
            select load_log.load_id, load_log.symbol, load_log.load_mode
            from raw.load_log as load_log
            where {{ stock_analytics.is_live_load('load_log') }}
                and load_log.file_kind in ('prices', 'feed')
                and (p_symbols is null or load_log.symbol = any(p_symbols) or load_log.file_kind = 'feed')
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
            and feed_bars.symbol in (select symbol from recomputed_symbols);

        -- An array, not a subquery: TimescaleDB then decompresses only those symbols' segments.
        v_recomputed := array(select distinct symbol from {{ batch }} where recompute);
        delete from {{ relation }} where symbol = any(v_recomputed);
        delete from {{ ledger }} where symbol = any(v_recomputed);
    end if;
    analyze {{ batch }};
    {{ stock_analytics.batch_load_ids() }} := array(select distinct load_id from {{ batch }} order by load_id);

    with written as (
        insert into {{ relation }} as stored ({{ column_list }})
        select {{ column_list }} from (
{{ sql }}
        ) as batch_rows
        on conflict ({{ key_columns | join(', ') }}) do update set
            {%- for column in columns if column not in key_columns %}
            {{ column }} = excluded.{{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        where {{ stock_analytics.is_newer_row('excluded', 'stored') }}
        returning stored.symbol, stored.{{ key_columns[-1] }} as changed_date
    ),

    touched as (
        select symbol, min(changed_date) as from_date, count(*) as row_count
        from written
        group by symbol
    ),

    recomputed as (
        select distinct symbol from {{ batch }} where recompute
    ),

    logged as (
        insert into {{ changes }} (symbol, from_date)
        select coalesce(touched.symbol, recomputed.symbol), case when recomputed.symbol is null then touched.from_date end
        from touched
        full outer join recomputed on touched.symbol = recomputed.symbol
        where not v_full
        returning 1
    )

    select coalesce(sum(row_count), 0) into v_rows from touched;

    if v_full then
        insert into {{ changes }} (symbol, from_date) values (null, null);
    end if;

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

    return query
    select
        count(distinct load_id),
        count(distinct symbol) filter (where recompute),
        v_rows
    from {{ batch }};
end
$apply$;
{%- endmacro %}
