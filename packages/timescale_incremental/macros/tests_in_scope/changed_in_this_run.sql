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

{#- "This invocation" falls back to var last_apply_started_at so that a lone `dbt test` tests
    the last change rather than nothing. -#}
{% macro changed_ranges(relation, rows_before=0, symbol_column='symbol', date_column=none) -%}
    {%- set date_column = date_column or (timescale_incremental.time_column_of(relation) if execute else 'time_column') -%}
    {%- if rows_before is not number or rows_before < 0 -%}
        {{ exceptions.raise_compiler_error(
            "changed_rows on " ~ relation ~ ": rows_before must be a whole number of rows, got " ~ rows_before) }}
    {%- endif -%}
with

run_changes as materialized (

    select
        symbol,
        from_date
    from {{ timescale_incremental.changes_relation(relation) }}
    where recorded_at >= least(
        cast('{{ run_started_at }}' as timestamptz),
        {{ var('last_apply_started_at', 'null') }}
    )

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
