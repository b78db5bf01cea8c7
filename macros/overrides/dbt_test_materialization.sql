{#- Overrides dbt's test materialization on PostgreSQL. Why: a test that stores its failures
    (the project's tests all do, in schema audit) drops the audit table, creates it and counts
    its rows in three round trips, for every test of every build; here they go in one statement
    string, one transaction (a reader of the audit table sees the last failures or the new
    ones, never no table). A test without stored failures, with a sql_header or storing its
    failures as a view runs dbt's own. -#}
{% materialization test, adapter='postgres' %}
    {%- if not should_store_failures() or config.get('sql_header') is not none
        or (config.get('store_failures_as') or 'table') != 'table' -%}
        {{ return(dbt.materialization_test_default()) }}
    {%- endif -%}
    {%- set old_relation = adapter.get_relation(database=database, schema=schema, identifier=model['alias']) -%}
    {%- set target_relation = api.Relation.create(
        identifier=model['alias'], schema=schema, database=database, type='table') -%}
    {%- call statement('main', fetch_result=True) -%}
        {%- if old_relation is not none %}
        {{ timescale_incremental.drop_relation_if_exists_sql(old_relation) }}
        {%- endif %}
        {{ get_create_sql(target_relation, get_limit_subquery_sql(sql, config.get('limit'))) }}
        {{ get_test_sql('select * from ' ~ target_relation, config.get('fail_calc'), config.get('warn_if'),
                        config.get('error_if'), limit=none) }}
    {%- endcall -%}
    {{ adapter.commit() }}
    {%- if old_relation is not none -%}
        {%- do adapter.cache_dropped(old_relation) -%}
    {%- endif -%}
    {%- do adapter.cache_added(target_relation) -%}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
