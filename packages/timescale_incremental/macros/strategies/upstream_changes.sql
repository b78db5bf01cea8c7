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
create or replace function {{ timescale_incremental.routine_name(relation, 'apply') }}(
    p_full boolean default false
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
begin
    perform {{ timescale_incremental.allow_dml_on_compressed_chunks() }};
    {{ timescale_incremental.watermark_claim(consumer, 'v_from') | indent(4) }}
    select coalesce(max(change_id), v_from) into v_to from {{ upstream_changes }};

    -- the batch's rows never commit (create_apply_batch_table): none but a call's own are seen
    delete from {{ batch }};

    v_everything := p_full or exists (
        select from {{ upstream_changes }}
        where change_id > v_from and change_id <= v_to and symbol is null
    );
    if v_everything then
        truncate {{ relation }};
        insert into {{ batch }} (symbol, from_date)
        select distinct symbol, null::date from {{ upstream }};
    else
        insert into {{ batch }} (symbol, from_date)
        select symbol, case when bool_or(from_date is null) then null else min(from_date) end
        from {{ upstream_changes }}
        where change_id > v_from and change_id <= v_to
        group by symbol;
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
        -- A symbol computed again whole goes from its first row, stored or upstream: the same
        -- rows as a null from_date, but a real lower bound for the delete, the model's read
        -- and the change log, so that one new listing in a daily batch does not make every
        -- statement below, and every model fed by this one, read all of history. A symbol
        -- left without a date has no row in either.
        update {{ batch }} as changed
        set from_date = whole.first_date
        from (
            select
                recomputed.symbol,
                least(
                    (select min(stored.{{ time_column }}) from {{ relation }} as stored
                     where stored.symbol = recomputed.symbol),
                    (select min(upstream_rows.{{ time_column }}) from {{ upstream }} as upstream_rows
                     where upstream_rows.symbol = recomputed.symbol)
                ) as first_date
            from {{ batch }} as recomputed
            where recomputed.from_date is null
        ) as whole
        where changed.symbol = whole.symbol
            and whole.first_date is not null;
        v_first_date := (select coalesce(min(from_date), 'infinity') from {{ batch }});
        if exists (
            select from timescaledb_information.chunks as chunk
            where chunk.hypertable_schema = '{{ relation.schema }}'
                and chunk.hypertable_name = '{{ relation.identifier }}'
                and chunk.is_compressed
                and chunk.range_end > v_first_date
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
                    and stored.{{ time_column }} >= coalesce(changed.from_date, %L)
                    and stored.{{ time_column }} >= %L',
                '-infinity', v_first_date
            );
        end if;
    end if;
    analyze {{ batch }};

    insert into {{ relation }} ({{ column_list }})
    select {{ column_list }} from (
{{ sql }}
    ) as batch_rows;
    get diagnostics v_rows = row_count;

    if v_everything then
        insert into {{ changes }} (symbol, from_date) values (null, null);
    else
        insert into {{ changes }} (symbol, from_date)
        select symbol, from_date from {{ batch }};
    end if;
    {{ timescale_incremental.watermark_advance(consumer, 'v_to') | indent(4) }}

    v_symbols := (select count(*) from {{ batch }});
    delete from {{ batch }};
    return query select v_symbols, v_rows;
end
$apply$;
{%- endmacro %}
