{#- Tests that scale with the change (where_subquery_in_scope, changed_rows, changed_ranges:
    documented in macros/_macros.yml). Why a placeholder: dbt renders a yml `where` at parse
    time, without macros, and would freeze run_started_at into the manifest. -#}
{% macro where_subquery_in_scope(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if not where -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set placeholder = modules.re.fullmatch(
        '__changed_in_this_run(?:_with_([0-9]+)_rows_before)?__', where | trim) -%}
    {%- if placeholder is none -%}
        {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') as dbt_subquery') }}
    {%- endif -%}
    {%- if var('full_tests', false) -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set rows_before = (placeholder.group(1) or 0) | int -%}
    {{ return('(' ~ timescale_incremental.changed_rows(relation, rows_before) ~ ') as dbt_subquery') }}
{%- endmacro %}

{#- `offset 0` below keeps the lateral a range scan of the (symbol, time) index per symbol. -#}
{% macro changed_rows(relation, rows_before=0, symbol_column='symbol', date_column=none) -%}
{%- set date_column = date_column or (timescale_incremental.time_column_of(relation) if execute else 'time_column') -%}
with

ranges as materialized (

    {{ timescale_incremental.changed_ranges(relation, rows_before, symbol_column, date_column) | indent(4) }}

)

select scoped.*
from ranges
cross join lateral (
    -- offset 0 keeps this a range scan of the (symbol, trade_date) index per changed symbol
    select * from {{ relation }} as stored
    where
        stored.{{ symbol_column }} = ranges.symbol
        and stored.{{ date_column }} >= ranges.range_start
    offset 0
) as scoped
{%- endmacro %}

{#- Which changes a test reads: those recorded since its last passing run started, or written by
    transactions that run's snapshot did not see (committed after it; the time alone would miss
    them; the snapshot alone would miss every change of a warehouse restored into a cluster
    whose transaction ids are lower); a test that never passed, the changes since this
    invocation started, falling back to var last_apply_started_at so that a lone `dbt test`
    tests the last change rather than nothing. The snapshot and time this run starts from are
    written into the SQL, where record_tests_passed finds them. -#}
{% macro changed_ranges(relation, rows_before=0, symbol_column='symbol', date_column=none) -%}
    {%- set date_column = date_column or (timescale_incremental.time_column_of(relation) if execute else 'time_column') -%}
    {%- if rows_before is not number or rows_before < 0 -%}
        {{ exceptions.raise_compiler_error(
            "changed_rows on " ~ relation ~ ": rows_before must be a whole number of rows, got " ~ rows_before) }}
    {%- endif -%}
with

run_changes as materialized (

    {%- set seen = timescale_incremental.snapshots_of_this_test() %}
    {{- timescale_incremental.tested_snapshot_comment(seen) }}
    select
        symbol,
        from_date
    from {{ timescale_incremental.changes_relation(relation) }}
    {%- if seen.passed %}
    -- what this test's last passing run did not see
    where {{ timescale_incremental.unseen_by_last_pass(seen) | indent(4) }}
    {%- else %}
    where recorded_at >= least(
        cast('{{ run_started_at }}' as timestamptz),
        {{ var('last_apply_started_at', 'null') }}
    )
    {%- endif %}

),

changed_symbols as (

    select
        symbol,
        min(coalesce(from_date, cast('-infinity' as date))) as from_date
    from run_changes
    where symbol is not null
    group by symbol
    union all
    -- a full rebuild changed every symbol's whole history (group by, not distinct: TimescaleDB
    -- 2.19's SkipScan fails on a distinct under this one-time filter)
    select
        {{ symbol_column }} as symbol,
        cast('-infinity' as date) as from_date
    from {{ relation }}
    where exists (select from run_changes where symbol is null)
    group by {{ symbol_column }}

),

first_changes as (

    select
        symbol,
        min(from_date) as from_date
    from changed_symbols
    group by symbol

)

select
    first_changes.symbol,
    {%- if rows_before > 0 %}
    coalesce(rows_before.first_date, first_changes.from_date) as range_start
    {%- else %}
    first_changes.from_date as range_start
    {%- endif %}
from first_changes
{%- if rows_before > 0 %}
left join lateral (
    select min(earlier.{{ date_column }}) as first_date
    from (
        select stored.{{ date_column }}
        from {{ relation }} as stored
        where
            stored.{{ symbol_column }} = first_changes.symbol
            and stored.{{ date_column }} < first_changes.from_date
        order by stored.{{ date_column }} desc
        limit {{ rows_before }}
    ) as earlier
) as rows_before on true
{%- endif %}
{%- endmacro %}

{#- The time column of the model built as `relation` (its config time_column; at execution). -#}
{% macro time_column_of(relation) -%}
    {%- for node in graph.nodes.values()
          if node.resource_type == 'model' and node.schema == relation.schema
             and (node.alias or node.name) == relation.identifier -%}
        {%- if node.config.get('time_column') -%}{{ return(node.config.get('time_column')) }}{%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error(
        "the time column of " ~ relation ~ ": no model with a time_column config is built there") }}
{%- endmacro %}

{#- Per test, the transactions its last passing (or warning) run saw (a pg_snapshot) and when
    it started. -#}
{% macro tests_passed_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema=timescale_incremental.bookkeeping_schema(),
                                  identifier='incremental_tests_passed', type='table')) }}
{%- endmacro %}

{% macro tested_snapshot_marker() -%}
tests in scope from snapshot
{%- endmacro %}

{#- The SQL comment that carries the snapshot and time a test starts from (none outside a test). -#}
{% macro tested_snapshot_comment(seen) -%}
    {%- if seen.current %}
    -- {{ timescale_incremental.tested_snapshot_marker() }} {{ seen.current }} at {{ seen.current_at }}
    {%- endif %}
{%- endmacro %}

{#- True for a row recorded since the test's last passing run started, or written by a
    transaction that run's snapshot did not see (documented in macros/_macros.yml). -#}
{% macro unseen_by_last_pass(seen, recorded_at='recorded_at', writer_xid='writer_xid') -%}
(
    {{ recorded_at }} >= cast('{{ seen.passed_at }}' as timestamptz)
    or (
        {{ writer_xid }} >= pg_snapshot_xmin(cast('{{ seen.passed }}' as pg_snapshot))
        and not pg_visible_in_snapshot({{ writer_xid }}, cast('{{ seen.passed }}' as pg_snapshot))
    )
)
{%- endmacro %}

{#- For the test being compiled: `current` and `current_at`, the snapshot and time it starts
    from now (taken before its query runs, so its query sees at least that); `passed` and
    `passed_at`, those of its last passing run (none if it never passed). All none outside a
    test or while parsing. -#}
{% macro snapshots_of_this_test() -%}
    {%- if not execute or model is not mapping or model.get('resource_type') != 'test' -%}
        {{ return({'current': none, 'current_at': none, 'passed': none, 'passed_at': none}) }}
    {%- endif -%}
    {%- set passed_relation = timescale_incremental.tests_passed_relation() -%}
    {%- set recorded = adapter.get_relation(passed_relation.database, passed_relation.schema,
                                            passed_relation.identifier) is not none -%}
    {%- set query -%}
        select
            pg_current_snapshot()::text as current_snapshot,
            to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' as current_at,
            {%- if recorded %}
            passed.snapshot as passed_snapshot,
            passed.tested_at::text as passed_at
        from (select) as now_
        left join {{ passed_relation }} as passed on passed.test_id = {{ dbt.string_literal(model.unique_id) }}
            {%- else %}
            cast(null as text) as passed_snapshot,
            cast(null as text) as passed_at
            {%- endif %}
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {{ return({'current': row['current_snapshot'], 'current_at': row['current_at'],
               'passed': row['passed_snapshot'], 'passed_at': row['passed_at']}) }}
{%- endmacro %}

{#- on-run-end: each test that passed or warned and read changes in scope keeps the snapshot it
    started from; a failing or erroring one keeps the earlier, so its changes are read again. -#}
{% macro record_tests_passed(results) -%}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set marker = modules.re.escape(timescale_incremental.tested_snapshot_marker())
                     ~ ' ([0-9]+:[0-9]+:[0-9,]*) at ([0-9-]+ [0-9:.+-]+)' -%}
    {%- set passed = [] -%}
    {%- for result in results
          if result.node.resource_type == 'test' and result.status in ('pass', 'warn') -%}
        {%- set found = modules.re.search(marker, result.node.compiled_code or '') -%}
        {%- if found -%}
            {%- do passed.append('(' ~ dbt.string_literal(result.node.unique_id) ~ ', '
                                 ~ dbt.string_literal(found.group(1)) ~ ', '
                                 ~ dbt.string_literal(found.group(2)) ~ '::timestamptz)') -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not passed -%}{{ return('') }}{%- endif -%}
    {%- set relation = timescale_incremental.tests_passed_relation() -%}
    create table if not exists {{ relation }} (
        test_id text primary key,
        snapshot text not null,
        tested_at timestamptz not null
    );
    insert into {{ relation }} (test_id, snapshot, tested_at)
    values {{ passed | join(', ') }}
    on conflict (test_id) do update set snapshot = excluded.snapshot, tested_at = excluded.tested_at
{%- endmacro %}
