{#- Overrides dbt's persist_docs on PostgreSQL. Why: dbt writes a model's comment and every
    documented column's comment again at each build (three statements a model, catalog rows
    rewritten, for text that rarely changes); the package's persist_docs_if_changed reads the
    comments in place in one query and writes them, as dbt does, only when one differs. -#}
{% macro postgres__persist_docs(relation, model, for_relation, for_columns) -%}
    {{ return(timescale_incremental.persist_docs_if_changed(relation, model, for_relation, for_columns)) }}
{%- endmacro %}
