{#- The change-log / watermark protocol, the one copy every apply and refresh routine uses.
    Documented in macros/_macros.yml; the package README states the contract. -#}

{% macro bookkeeping_schema() -%}
    {{ return(var('incremental_bookkeeping_schema', target.schema)) }}
{%- endmacro %}

{% macro changes_relation(relation) -%}
    {#- While parsing, ref() gives the calling node itself, whose name may be too long to suffix. -#}
    {%- if not execute -%}{{ return(relation) }}{%- endif -%}
    {{ return(api.Relation.create(database=relation.database, schema=relation.schema,
                                  identifier=relation.identifier ~ '__changes', type='table')) }}
{%- endmacro %}

{% macro watermarks_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema=timescale_incremental.bookkeeping_schema(),
                                  identifier='incremental_watermarks', type='table')) }}
{%- endmacro %}

{% macro routines_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema=timescale_incremental.bookkeeping_schema(),
                                  identifier='incremental_routines', type='table')) }}
{%- endmacro %}

{% macro routine_name(relation, verb) -%}
    {{ return(relation.schema ~ '.' ~ relation.identifier ~ '__' ~ verb) }}
{%- endmacro %}

{% macro create_incremental_bookkeeping(relation) -%}
    -- One model's setup at a time (these statements are one transaction): the shared tables'
    -- creation and grants would otherwise race ("tuple concurrently updated"); routines do not
    -- take this lock, so a setup never waits for one.
    select pg_catalog.pg_advisory_xact_lock({{ timescale_incremental.change_log_lock_space() }}, 0);
    create schema if not exists {{ adapter.quote(timescale_incremental.bookkeeping_schema()) }};
    create table if not exists {{ timescale_incremental.watermarks_relation() }} (
        consumer text primary key,
        change_id bigint not null,
        updated_at timestamptz not null default now()
    );
    {{ timescale_incremental.watermarks_add_changes_relation() }}
    create table if not exists {{ timescale_incremental.routines_relation() }} (
        relation_name text primary key,
        routine text not null,
        strategy text not null,
        kind text not null check (kind in ('function', 'procedure')),
        registered_at timestamptz not null default now()
    );
    {{ timescale_incremental.grant_to_caller(timescale_incremental.routines_relation(), 'table', 'select') }}
    create table if not exists {{ timescale_incremental.taken_relation() }} (
        consumer text not null,
        change_id bigint not null,
        primary key (consumer, change_id)
    );
    {%- set changes = timescale_incremental.changes_relation(relation) %}
    create table if not exists {{ changes }} (
        change_id bigint generated always as identity primary key,
        symbol text,
        from_date date,
        recorded_at timestamptz not null default clock_timestamp()
    );
    -- the writing transaction: a scoped call takes the rows of the transactions its caller names
    -- (a change log of an earlier release gets the column, its old rows none)
    {{ timescale_incremental.add_column_if_missing(changes, 'writer_xid', 'xid8') }}
    {{ timescale_incremental.set_default_if_missing(changes, 'writer_xid', 'pg_current_xact_id()') }}
    {{ timescale_incremental.create_index_if_missing(changes.identifier ~ '_writer_xid_idx', changes, '(writer_xid)') }}
    -- the scoped tests look changes up by when they were recorded (changed_ranges)
    {{ timescale_incremental.create_index_if_missing(changes.identifier ~ '_recorded_at_idx', changes, '(recorded_at)') }}
    -- the dates whose values changed (null: every date from from_date on; the package README)
    {{ timescale_incremental.add_column_if_missing(changes, 'value_dates', 'datemultirange') }}
{%- endmacro %}

{#- Rows of change logs that a scoped call applied before its consumer's watermark passed them. -#}
{% macro taken_relation() -%}
    {{ return(api.Relation.create(database=target.database, schema=timescale_incremental.bookkeeping_schema(),
                                  identifier='incremental_taken', type='table')) }}
{%- endmacro %}

{#- The lock of a change log's writers: a scoped call (its caller keeps the symbols of
    concurrent scoped calls apart) takes it shared, every other writer, and every reader that
    moves a watermark, exclusive. A reader so waits for the writers in flight: no change_id
    below the highest it sees can commit after it has read it. An expression; `changes` a
    relation or its rendered name. -#}
{% macro change_log_lock(changes, shared=false) -%}
pg_catalog.pg_advisory_xact_lock{{ '_shared' if shared }}({{ timescale_incremental.relation_lock_key(changes) }})
{%- endmacro %}

{#- PL/pgSQL: the writer's lock, shared when the boolean expression `scoped` is true. -#}
{% macro lock_change_log_for_writing(changes, scoped) -%}
if {{ scoped }} then
    perform {{ timescale_incremental.change_log_lock(changes, shared=true) }};
else
    perform {{ timescale_incremental.change_log_lock(changes) }};
end if;
{%- endmacro %}

{#- The first key of the package's advisory locks (the second: the change log's oid), apart
    from the one-key locks a project takes ('ti' in ASCII). -#}
{% macro change_log_lock_space() -%}29801{%- endmacro %}

{#- The two keys of the package's advisory lock on `relation` (a relation or its rendered name). -#}
{% macro relation_lock_key(relation) -%}
{%- set relation = relation if relation is string else relation.include(database=False) -%}
{{ timescale_incremental.change_log_lock_space() }}, {{ dbt.string_literal(relation | string) }}::regclass::oid::integer
{%- endmacro %}

{#- PL/pgSQL statements: make sure `consumer` has a watermark row, lock it (FOR UPDATE, unless
    `lock` is false: the caller holds another lock) and read it into the variable `into`. -#}
{% macro watermark_claim(consumer, into, lock=true) -%}
insert into {{ timescale_incremental.watermarks_relation().include(database=False) }} (consumer, change_id)
values ({{ dbt.string_literal(consumer) }}, 0)
on conflict (consumer) do nothing;
select watermark.change_id into {{ into }}
from {{ timescale_incremental.watermarks_relation().include(database=False) }} as watermark
where watermark.consumer = {{ dbt.string_literal(consumer) }}{{ '\nfor update' if lock }};
{%- endmacro %}

{#- A statement moving `consumer`'s watermark to `change_id` (an SQL expression); never back. -#}
{% macro watermark_advance(consumer, change_id) -%}
update {{ timescale_incremental.watermarks_relation().include(database=False) }}
set change_id = greatest(change_id, {{ change_id }}), updated_at = now()
where consumer = {{ dbt.string_literal(consumer) }};
{%- endmacro %}

{#- Statements setting `consumer`'s watermark to the latest change of `changes` (a rebuild
    has applied everything before it). -#}
{% macro watermark_reset_to_latest(consumer, changes) -%}
select {{ timescale_incremental.change_log_lock(changes) }};
{{ timescale_incremental.watermarks_add_changes_relation() }}
delete from {{ timescale_incremental.taken_relation() }} where consumer = {{ dbt.string_literal(consumer) }};
insert into {{ timescale_incremental.watermarks_relation().include(database=False) }} (consumer, change_id)
values ({{ dbt.string_literal(consumer) }}, 0)
on conflict (consumer) do nothing;
update {{ timescale_incremental.watermarks_relation().include(database=False) }}
set
    change_id = (select coalesce(max(change_id), 0) from {{ changes }}),
    changes_relation = {{ dbt.string_literal(changes | string) }},
    updated_at = now()
where consumer = {{ dbt.string_literal(consumer) }};
{%- endmacro %}

{#- The change log a watermark counts in (null: set by a release before the column). Added
    where a watermark is reset too: a period mart built on its own may come first. -#}
{% macro watermarks_add_changes_relation() -%}
{{ timescale_incremental.add_column_if_missing(timescale_incremental.watermarks_relation().include(database=False), 'changes_relation', 'text') }}
{%- endmacro %}

{#- True when `consumer` has a watermark counted in another change log than `changes` (its model
    now reads another one), or in one a release before the record did not name: its change ids
    mean nothing in `changes`, so the consumer is built again. -#}
{% macro watermark_counts_another_log(consumer, changes) -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set found = run_query(
        "select to_jsonb(watermark) ->> 'changes_relation' from "
        ~ timescale_incremental.watermarks_relation().include(database=False) ~ " as watermark"
        ~ " where consumer = " ~ dbt.string_literal(consumer)) -%}
    {%- if found.rows | length == 0 -%}{{ return(false) }}{%- endif -%}
    {{ return(found.rows[0][0] != (changes | string)) }}
{%- endmacro %}

{#- Statements recording the routine that keeps `relation` current (the live feed and other
    callers read this list instead of guessing names), and dropping any other kind's row. A row
    keeps the time of its first registration: callers run the routines in that order, the order
    of a first build, where a model comes after the ones it reads (a later rebuild of one model
    on its own must not move it behind the models that read its changes). -#}
{% macro register_routine(relation, routine, strategy, kind='function') -%}
insert into {{ timescale_incremental.routines_relation() }} (relation_name, routine, strategy, kind)
values (
    {{ dbt.string_literal(relation.schema ~ '.' ~ relation.identifier) }},
    {{ dbt.string_literal(routine) }},
    {{ dbt.string_literal(strategy) }},
    {{ dbt.string_literal(kind) }}
)
on conflict (relation_name) do update set
    routine = excluded.routine, strategy = excluded.strategy, kind = excluded.kind;
{%- endmacro %}
