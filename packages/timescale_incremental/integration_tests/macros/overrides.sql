{#- The overrides the package's README asks a project to add (dbt takes them from the root
    project only): one-transaction swaps for views and tables, tests scoped to the changes. -#}
{% materialization view, adapter='postgres' %}
    {{ return(timescale_incremental.swap_in_relation('view')) }}
{% endmaterialization %}

{% materialization table, adapter='postgres' %}
    {{ return(timescale_incremental.swap_in_relation('table')) }}
{% endmaterialization %}

{% macro get_where_subquery(relation) -%}
    {{ return(timescale_incremental.where_subquery_in_scope(relation)) }}
{%- endmacro %}
