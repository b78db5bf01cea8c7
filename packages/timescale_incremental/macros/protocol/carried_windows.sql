{#- Carried windows (config carried_windows, documented in macros/_macros.yml; the README's
    "Carried windows"): per symbol, the last values of some columns as of its last stored row,
    kept by the apply routine with the rows, so that a model going on from them reads one row
    a symbol instead of the window's length. -#}
{% macro carried_windows(relation=none) -%}
    {%- set relation = relation or this -%}
    {{ return(api.Relation.create(database=relation.database, schema=timescale_incremental.bookkeeping_schema(),
                                  identifier=relation.identifier ~ '__windows', type='table')) }}
{%- endmacro %}

{#- The model's config carried_windows checked: {'columns': [...], 'length': n}, or none. -#}
{% macro carried_windows_config() -%}
    {%- set carried = config.get('carried_windows') -%}
    {%- if carried is none -%}{{ return(none) }}{%- endif -%}
    {%- if carried is not mapping or not carried.get('columns') or (carried.get('length') | int(0)) < 1 -%}
        {{ exceptions.raise_compiler_error(
            "carried_windows must be {'columns': [column, ...], 'length': n} with n >= 1, not " ~ carried) }}
    {%- endif -%}
    {{ return({'columns': carried['columns'], 'length': carried['length'] | int}) }}
{%- endmacro %}

{#- Setup, once the model's table exists: the windows table, one row per symbol, each carried
    column as an array of its type. Looked for in the catalog first (add_column_if_missing says
    why). -#}
{% macro create_carried_windows_table(relation, time_column) -%}
    {%- set carried = timescale_incremental.carried_windows_config() -%}
    {%- set windows = timescale_incremental.carried_windows(relation) -%}
do $carried_windows$
begin
    if to_regclass({{ timescale_incremental.relation_name_literal(windows) }}) is null then
        create table {{ windows }} as
        select
            symbol,
            {{ time_column }},
            {%- for column in carried['columns'] %}
            array[{{ column }}] as {{ column }}{{ ',' if not loop.last }}
            {%- endfor %}
        from {{ relation }}
        with no data;
        alter table {{ windows }} add primary key (symbol);
        revoke all on {{ windows }} from public;
    end if;
end
$carried_windows$;
{%- endmacro %}

{#- PL/pgSQL, in an apply routine after its insert: the windows of the batch's symbols brought
    to their stored rows. A symbol whose windows end before its first changed time gets its new
    rows appended (and the oldest cut); any other is read again from its last stored rows (a
    symbol with none keeps no windows). `everything` (a boolean expression): the table was
    rebuilt whole, every window is read again. -#}
{% macro keep_carried_windows(relation, batch, time_column, everything) -%}
{%- set carried = timescale_incremental.carried_windows_config() -%}
{%- set windows = timescale_incremental.carried_windows(relation) -%}
{%- set length = carried['length'] -%}
if {{ everything }} then
    truncate {{ windows }};
else
    -- first the windows that cannot go on: a symbol whose change starts at or before their end
    delete from {{ windows }} as windows
    using {{ batch }} as changed
    where windows.symbol = changed.symbol
        and not coalesce(windows.{{ time_column }} < changed.from_date, false);
    -- the others take the rows after them (by the index, symbol by symbol)
    update {{ windows }} as windows
    set
        {{ time_column }} = appended.{{ time_column }},
        {%- for column in carried['columns'] %}
        {{ column }} = (windows.{{ column }} || appended.{{ column }})[
            greatest(cardinality(windows.{{ column }}) + cardinality(appended.{{ column }}) - {{ length - 1 }}, 1):
        ]{{ ',' if not loop.last }}
        {%- endfor %}
    from (
        select kept.symbol, new_rows.*
        from {{ batch }} as changed
        inner join {{ windows }} as kept on kept.symbol = changed.symbol
        cross join lateral (
            select
                max(stored.{{ time_column }}) as {{ time_column }},
                {%- for column in carried['columns'] %}
                array_agg(stored.{{ column }} order by stored.{{ time_column }}) as {{ column }}{{ ',' if not loop.last }}
                {%- endfor %}
            from {{ relation }} as stored
            where stored.symbol = kept.symbol
                and stored.{{ time_column }} > kept.{{ time_column }}
        ) as new_rows
        where new_rows.{{ time_column }} is not null
    ) as appended
    where windows.symbol = appended.symbol;
end if;
insert into {{ windows }} (symbol, {{ time_column }}, {{ carried['columns'] | join(', ') }})
select
    changed.symbol,
    max(last_rows.{{ time_column }}),
    {%- for column in carried['columns'] %}
    array_agg(last_rows.{{ column }} order by last_rows.{{ time_column }}){{ ',' if not loop.last }}
    {%- endfor %}
from (
    -- in symbol order: the probes read each chunk forwards
    select symbol from {{ batch }}
    order by symbol
) as changed
cross join lateral (
    select
        stored.{{ time_column }},
        {%- for column in carried['columns'] %}
        stored.{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ relation }} as stored
    where stored.symbol = changed.symbol
    order by stored.{{ time_column }} desc
    limit {{ length }}
) as last_rows
where not exists (select from {{ windows }} as windows where windows.symbol = changed.symbol)
group by changed.symbol;
{%- endmacro %}
