{#- The overrides the package's README asks a project to add (dbt takes them from the root
    project only): one-transaction swaps for views and tables (an unchanged view left in place),
    tests scoped to the changes, comments written only when they differ. -#}
{% materialization view, adapter='postgres' %}
    {{ return(timescale_incremental.swap_in_relation('view')) }}
{% endmaterialization %}

{% materialization table, adapter='postgres' %}
    {{ return(timescale_incremental.swap_in_relation('table')) }}
{% endmaterialization %}

{% macro get_where_subquery(relation) -%}
    {{ return(timescale_incremental.where_subquery_in_scope(relation)) }}
{%- endmacro %}

{% macro postgres__persist_docs(relation, model, for_relation, for_columns) -%}
    {{ return(timescale_incremental.persist_docs_if_changed(relation, model, for_relation, for_columns)) }}
{%- endmacro %}
