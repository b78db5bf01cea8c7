{#- dbt's persist_docs, written only when a comment differs (documented in macros/_macros.yml).
    A project turns it on by overriding postgres__persist_docs (README, Overrides). -#}
{% macro persist_docs_if_changed(relation, model, for_relation=true, for_columns=true) -%}
    {%- set relation_docs = for_relation and config.persist_relation_docs() and model.description -%}
    {%- set column_docs = for_columns and config.persist_column_docs() and model.columns -%}
    {%- if not (relation_docs or column_docs) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set in_place_sql -%}
        select
            obj_description(attribute.attrelid, 'pg_class'),
            json_object_agg(attribute.attname, coalesce(col_description(attribute.attrelid, attribute.attnum), ''))
        from pg_attribute as attribute
        where
            attribute.attrelid = to_regclass({{ timescale_incremental.relation_name_literal(relation) }})
            and attribute.attnum > 0
            and not attribute.attisdropped
        group by attribute.attrelid
    {%- endset -%}
    {%- set in_place = run_query(in_place_sql) -%}
    {%- set differing = [] if in_place.rows | length == 1 else ['the relation itself'] -%}
    {%- if not differing and relation_docs and in_place.rows[0][0] != model.description -%}
        {%- do differing.append('its description') -%}
    {%- endif -%}
    {%- if not differing and column_docs -%}
        {%- set column_comments = fromjson(in_place.rows[0][1]) -%}
        {%- set lowered = {} -%}
        {%- for name, comment in column_comments.items() -%}
            {%- do lowered.update({name | lower: comment}) -%}
        {%- endfor -%}
        {%- for name, column in model.columns.items() -%}
            {#- dbt's own matching (validate_doc_columns): a quoted column by its exact name; a
                missing column makes dbt warn, so persist_docs runs. -#}
            {%- set in_place_comment = column_comments.get(name) if column.quote else lowered.get(name | lower) -%}
            {%- if in_place_comment is none or in_place_comment != column.description -%}
                {%- do differing.append(name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if differing -%}
        {%- do dbt.default__persist_docs(relation, model, for_relation, for_columns) -%}
    {%- endif -%}
{%- endmacro %}
