{#- Setup DDL that runs at every build and looks in the catalog first (documented in
    macros/_macros.yml). Why: ALTER TABLE ... IF NOT EXISTS and CREATE INDEX IF NOT EXISTS take
    their table's lock before they find there is nothing to do, so a build's setup waited for
    every routine running beside it that had touched the table (the shared watermarks: up to
    a second a model at Kaggle scale), and every later reader queued behind that wait. -#}
{% macro add_column_if_missing(relation, column, data_type) -%}
do $add_column$
begin
    if not exists (
        select from pg_catalog.pg_attribute
        where attrelid = {{ timescale_incremental.regclass_literal(relation) }}
            and attname = {{ dbt.string_literal(column) }}
            and not attisdropped
    ) then
        alter table {{ relation }} add column if not exists {{ column }} {{ data_type }};
    end if;
end
$add_column$;
{%- endmacro %}

{% macro set_default_if_missing(relation, column, default_sql) -%}
do $set_default$
begin
    if not exists (
        select from pg_catalog.pg_attrdef as attribute_default
        inner join pg_catalog.pg_attribute as attribute
            on attribute.attrelid = attribute_default.adrelid and attribute.attnum = attribute_default.adnum
        where attribute_default.adrelid = {{ timescale_incremental.regclass_literal(relation) }}
            and attribute.attname = {{ dbt.string_literal(column) }}
    ) then
        alter table {{ relation }} alter column {{ column }} set default {{ default_sql }};
    end if;
end
$set_default$;
{%- endmacro %}

{% macro create_index_if_missing(index_name, relation, definition) -%}
do $create_index$
begin
    if to_regclass({{ dbt.string_literal(adapter.quote(relation.schema) ~ '.' ~ adapter.quote(index_name)) }}) is null then
        create index if not exists {{ adapter.quote(index_name) }} on {{ relation }} {{ definition }};
    end if;
end
$create_index$;
{%- endmacro %}

{#- `relation` (a relation or its rendered name) as a regclass constant. -#}
{% macro regclass_literal(relation) -%}
{{ timescale_incremental.relation_name_literal(relation) }}::regclass
{%- endmacro %}

{#- `relation`'s name as a string literal, for to_regclass (null when it is missing). -#}
{% macro relation_name_literal(relation) -%}
{%- set relation = relation if relation is string else relation.include(database=False) -%}
{{ dbt.string_literal(relation | string) }}
{%- endmacro %}
