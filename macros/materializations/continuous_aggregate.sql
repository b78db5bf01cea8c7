{#- A TimescaleDB continuous aggregate where var('use_continuous_aggregates') is on and the
    server's license allows it; otherwise, after one log line saying why, dbt's own table
    materialization (with its contract enforcement). The model's SQL must be a single SELECT
    with a time_bucket() GROUP BY on a hypertable (see period_price_averages). -#}
{% materialization continuous_aggregate, adapter='postgres' %}
    {%- if not var('use_continuous_aggregates', false)
          or not stock_analytics.timescaledb_feature_enabled('continuous aggregates', this.identifier) -%}
        {{ return(dbt.materialization_table_default()) }}
    {%- endif -%}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='view') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {#- Continuous aggregates cannot be created inside a transaction block. -#}
    {%- if existing_relation is not none -%}
        {%- call statement('drop_existing', auto_begin=False) -%}
            {%- if existing_relation.is_table -%}
            drop table if exists {{ existing_relation }} cascade
            {%- else -%}
            drop materialized view if exists {{ existing_relation }} cascade
            {%- endif -%}
        {%- endcall -%}
    {%- endif -%}
    {%- if config.get('contract').enforced -%}
        {{ get_assert_columns_equivalent(sql) }}
    {%- endif -%}
    {%- call statement('main', auto_begin=False) -%}
        create materialized view {{ target_relation }}
        with (timescaledb.continuous, timescaledb.materialized_only = false)
        as {{ sql }}
        with data
    {%- endcall -%}
    {%- do log("TimescaleDB continuous aggregate built: " ~ target_relation, info=true) -%}
    {#- A new relation each run: grant afresh (schema default privileges also cover it). -#}
    {%- do apply_grants(target_relation, config.get('grants'), should_revoke=False) -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
