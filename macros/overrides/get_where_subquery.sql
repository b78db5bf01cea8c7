{#- Overrides dbt's get_where_subquery. Why: a test whose `where` is `__changed_in_this_run__`
    (or `..._with_N_rows_before__`) reads only the rows this build changed, so a daily build
    tests the new day, not the whole history; a raw table's test whose `where` is
    `__in_untested_loads__` reads only the rows of loads it has not seen pass. dbt renders a
    yml `where` at parse time, so the placeholders are expanded here, when the test runs. Any
    other `where` works as in dbt. -#}
{% macro get_where_subquery(relation) -%}
    {%- if (config.get('where') or '') | trim == '__in_untested_loads__' -%}
        {{ return(stock_analytics.rows_of_untested_loads(relation)) }}
    {%- endif -%}
    {{ return(timescale_incremental.where_subquery_in_scope(relation)) }}
{%- endmacro %}
