{#- A project's own apply strategy, the smallest one: the first model of a chain reads a source
    table that only grows; each call takes, per symbol, the source rows after the last stored
    price_date (all of them on p_full), and logs them in the model's change log. -#}
{% macro append_rows__batch_columns() -%}
symbol text primary key,
from_price_date date
{%- endmacro %}

{% macro append_rows__apply_call_sql(relation, full_refresh) -%}
select * from {{ timescale_incremental.routine_name(relation, 'apply') }}(p_full => {{ 'true' if full_refresh else 'false' }})
{%- endmacro %}

{% macro append_rows__apply_function_sql(relation, sql, columns, key_columns) -%}
{%- set source_relation = source('tsi_source', 'prices') -%}
{%- set batch = timescale_incremental.apply_batch(relation) -%}
{%- set changes = timescale_incremental.changes_relation(relation) -%}
{%- set time_column = key_columns[-1] -%}
create or replace function {{ timescale_incremental.routine_name(relation, 'apply') }}(p_full boolean default false)
returns table (symbols_changed bigint, rows_written bigint)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $apply$
declare
    v_rows bigint;
    v_symbols bigint;
begin
    -- never scoped: its change log's lock exclusive (the package README, "Scoped calls")
    {{ timescale_incremental.lock_change_log_for_writing(changes, 'false') | indent(4) }}
    delete from {{ batch }};
    if p_full then
        truncate {{ relation }};
        insert into {{ batch }} (symbol, from_price_date)
        select distinct symbol, null::date from {{ source_relation }};
    else
        insert into {{ batch }} (symbol, from_price_date)
        select src.symbol, min(src.price_date)
        from {{ source_relation }} as src
        left join (
            select symbol, max({{ time_column }}) as last_day from {{ relation }} group by symbol
        ) as stored on src.symbol = stored.symbol
        where stored.last_day is null or src.price_date > stored.last_day
        group by src.symbol;
    end if;
    insert into {{ relation }} ({{ columns | join(', ') }})
    select {{ columns | join(', ') }} from (
{{ sql }}
    ) as batch_rows;
    get diagnostics v_rows = row_count;
    if p_full then
        insert into {{ changes }} (symbol, from_date) values (null, null);
    else
        insert into {{ changes }} (symbol, from_date) select symbol, from_price_date from {{ batch }};
    end if;
    v_symbols := (select count(*) from {{ batch }});
    delete from {{ batch }};
    return query select v_symbols, v_rows;
end
$apply$
{%- endmacro %}
