{#- The batch an apply routine fills before it runs the model's SQL (documented in
    macros/_macros.yml; the README's "The batch"). -#}
{% macro apply_batch(relation=none) -%}
    {%- set relation = relation or this -%}
    {{ return(api.Relation.create(database=relation.database, schema=timescale_incremental.bookkeeping_schema(),
                                  identifier=relation.identifier ~ '__batch', type='table')) }}
{%- endmacro %}

{% macro incremental_table_exists() -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {{ return(load_relation(this) is not none) }}
{%- endmacro %}

{#- A permanent table whose rows never commit: a routine inserts its batch, runs the model's
    SQL and deletes the batch in its transaction, so each caller sees only its own rows and
    everyone else an empty table. -#}
{% macro create_apply_batch_table(relation, columns) -%}
    create table if not exists {{ timescale_incremental.apply_batch(relation) }} (
        {{ columns | indent(8) }}
    );
    revoke all on {{ timescale_incremental.apply_batch(relation) }} from public;
{%- endmacro %}

{#- A period table's batch: per symbol, the first period its routine recomputes, and of those
    the periods whose values changed, as whole buckets (null: every one). -#}
{% macro period_batch_columns() -%}
symbol text not null,
from_period date not null,
periods datemultirange
{%- endmacro %}

{#- Aggregate over a period batch's rows: the first day any of them holds. -#}
{% macro period_batch_first_day() -%}
coalesce(min(greatest(from_period, coalesce(lower(periods), from_period))), 'infinity')
{%- endmacro %}

{% macro changed_period_rows(relation, batch, time_column, symbol_column='symbol') -%}
select source_rows.*
from {{ relation }} as source_rows
inner join {{ batch }} as changed
    on source_rows.{{ symbol_column }} = changed.symbol
    and source_rows.{{ time_column }} >= changed.from_period
    and (changed.periods is null or changed.periods @> source_rows.{{ time_column }})
cross join (
    select {{ timescale_incremental.period_batch_first_day() }} as batch_from_period from {{ batch }}
) as batch_bound
-- One bound for every symbol at once; inside the routine batch_from_period is its variable,
-- a constant to the planner, so the chunks before every change are left out of the plan
-- (as a parameter, each symbol's lookup would exclude them again: 25x slower at Kaggle scale).
where source_rows.{{ time_column }} >= batch_from_period  -- noqa: RF02
{%- endmacro %}

{#- The macro `<strategy>__<step>` of an apply strategy: the project's own first (as dbt finds a
    custom incremental strategy), then this package's. -#}
{% macro strategy_macro(strategy, step, required=true) -%}
    {%- set name = strategy ~ '__' ~ step -%}
    {%- set found = context.get(name) -%}
    {%- if found is none and name in context.get('timescale_incremental', {}) -%}
        {%- set found = context['timescale_incremental'][name] -%}
    {%- endif -%}
    {%- if found is none and required -%}
        {{ exceptions.raise_compiler_error(
            "apply strategy '" ~ strategy ~ "' has no macro " ~ name
            ~ ": define it in the project (see packages/timescale_incremental/README.md, Apply strategies)") }}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}

{#- PL/pgSQL: ANALYZE the batch, so the model's SQL is planned for its size. Its lock lasts to
    the commit, so a scoped call (`scoped`, a boolean expression) does not wait for another's:
    it plans with the statistics last committed instead of running after it. Which call may
    ANALYZE is settled by an advisory lock of the same lifetime, tried first, not by a lock
    timeout: an ANALYZE stopped half-way is unsafe in a routine (analyze_in_routine). -#}
{% macro analyze_batch(batch, scoped='false') -%}
{%- set lock_key = timescale_incremental.relation_lock_key(batch) -%}
if not {{ scoped }} then
    perform pg_catalog.pg_advisory_xact_lock({{ lock_key }});
    {{ timescale_incremental.analyze_in_routine(batch) }}
elsif pg_catalog.pg_try_advisory_xact_lock({{ lock_key }}) then
    {{ timescale_incremental.analyze_in_routine(batch) }}
end if;
{%- endmacro %}

{#- PL/pgSQL: ANALYZE a table in a routine, as dynamic SQL (parsed at each call, never a cached
    plan): TimescaleDB 2.19's utility hook rewrites an ANALYZE's statement in place and restores
    it only when the ANALYZE succeeds, so a cached one stopped half-way (cancelled, timed out)
    crashes the server at the routine's next call in that session. -#}
{% macro analyze_in_routine(relation) -%}
execute 'analyze {{ relation }}';
{%- endmacro %}
