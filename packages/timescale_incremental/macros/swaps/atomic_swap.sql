{#- dbt's view and table materializations with the swap in one transaction (documented in
    macros/_macros.yml). A project turns them on by overriding dbt's view and table
    materializations with calls to swap_in_relation (dbt requires the override in the root
    project): see the README, Overrides. -#}
{% macro swap_in_relation(relation_type) -%}
    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type=relation_type) -%}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- set backup_type = existing_relation.type if existing_relation is not none else relation_type -%}
    {%- set backup_relation = make_backup_relation(target_relation, backup_type) -%}
    {%- set grant_config = config.get('grants') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- call statement('main') -%}
        {{ timescale_incremental.drop_relation_if_exists_sql(intermediate_relation) }}
        {{ timescale_incremental.drop_relation_if_exists_sql(backup_relation) }}
        {%- if relation_type == 'view' %}
        {{ get_create_view_as_sql(intermediate_relation, sql) }};
        {%- else %}
        {{ get_create_table_as_sql(False, intermediate_relation, sql) }};
            {%- for index in config.get('indexes', []) %}
        {{ get_create_index_sql(intermediate_relation, index) }};
            {%- endfor %}
        analyze {{ intermediate_relation }};
        {%- endif %}
        {%- if existing_relation is not none %}
        alter {{ existing_relation.type }} {{ existing_relation }} rename to {{ adapter.quote(backup_relation.identifier) }};
        {%- endif %}
        alter {{ relation_type }} {{ intermediate_relation }} rename to {{ adapter.quote(target_relation.identifier) }};
    {%- endcall -%}
    {#- The old relation goes after the swap, through the adapter: dbt's relation cache then
        forgets the views built on it too (the cascade drops them; they are rebuilt downstream). -#}
    {%- if existing_relation is not none -%}
        {%- do adapter.cache_renamed(existing_relation, backup_relation) -%}
        {%- do adapter.drop_relation(backup_relation) -%}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- do persist_docs(target_relation, model) -%}
    {{ adapter.commit() }}
    {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode=True) -%}
    {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {{ return({'relations': [target_relation]}) }}
{%- endmacro %}

{#- Drop a relation of either kind if it exists (a leftover of a killed run). -#}
{% macro drop_relation_if_exists_sql(relation) -%}
    do $drop$
    declare
        kind "char" := (select relkind from pg_class where oid = to_regclass({{ dbt.string_literal(relation) }}));
    begin
        if kind = 'v' then
            execute {{ dbt.string_literal('drop view ' ~ relation ~ ' cascade') }};
        elsif kind is not null then
            execute {{ dbt.string_literal('drop table ' ~ relation ~ ' cascade') }};
        end if;
    end
    $drop$;
{%- endmacro %}
