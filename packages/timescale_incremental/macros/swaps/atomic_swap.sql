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
    {%- set view_fingerprint = timescale_incremental.view_fingerprint() if relation_type == 'view' else none -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- if view_fingerprint is not none and existing_relation is not none and existing_relation.is_view
        and not should_full_refresh()
        and timescale_incremental.view_is_current(target_relation, view_fingerprint) -%}
        {%- call noop_statement('main', 'UNCHANGED', 'UNCHANGED', 0) -%}
            -- the view's definition and contract are those of its last build: nothing to swap
        {%- endcall -%}
        {{ run_hooks(post_hooks, inside_transaction=True) }}
        {%- do persist_docs(target_relation, model) -%}
        {{ adapter.commit() }}
        {#- Not rebuilt, so grants the config no longer names are revoked here. -#}
        {%- do apply_grants(target_relation, grant_config, should_revoke=True) -%}
        {{ run_hooks(post_hooks, inside_transaction=False) }}
        {{ return({'relations': [target_relation]}) }}
    {%- endif -%}

    {%- call statement('main') -%}
        {{ timescale_incremental.drop_relation_if_exists_sql(intermediate_relation) }}
        {{ timescale_incremental.drop_relation_if_exists_sql(backup_relation) }}
        {%- if relation_type == 'view' %}
        {{ get_create_view_as_sql(intermediate_relation, sql) }};
            {%- if view_fingerprint is not none %}
        comment on rule "_RETURN" on {{ intermediate_relation }} is {{ dbt.string_literal(view_fingerprint) }};
            {%- endif %}
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
        kind "char" := (select relkind from pg_class where oid = to_regclass({{ timescale_incremental.relation_name_literal(relation) }}));
    begin
        if kind = 'v' then
            execute {{ dbt.string_literal('drop view ' ~ relation ~ ' cascade') }};
        elsif kind is not null then
            execute {{ dbt.string_literal('drop table ' ~ relation ~ ' cascade') }};
        end if;
    end
    $drop$;
{%- endmacro %}

{#- What a view's build depends on besides its SQL: the contract dbt checks when it creates
    the view. None (always rebuilt) for a view with a sql_header, whose statements could change
    what the SQL means. -#}
{% macro view_fingerprint() -%}
    {%- if config.get('sql_header') is not none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set contract = config.get('contract') -%}
    {%- set checked_columns = {} -%}
    {%- if contract and contract.enforced -%}
        {%- for name, column in model.columns.items() -%}
            {%- do checked_columns.update({name: [column.data_type, column.constraints | map(attribute='type') | list]}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return('dbt view ' ~ local_md5(tojson({'contract': contract.enforced if contract else false, 'columns': checked_columns}, sort_keys=true))) }}
{%- endmacro %}

{#- True when the view in place is the one this build would create: the SQL, as PostgreSQL
    stores it, compared through a temporary view of the model's SQL (so a column an upstream
    relation gained under `select *`, or a definition changed by hand, counts as a change),
    and the fingerprint its last build left on the view's rule. -#}
{% macro view_is_current(relation, fingerprint) -%}
    {%- set view = timescale_incremental.relation_name_literal(relation) -%}
    {%- set compare_sql -%}
        do $view_is_current$
        declare
            is_current boolean;
        begin
            execute $probe$ create temporary view timescale_incremental__view_probe as (
                {{ sql }}
            ) $probe$;
            select coalesce(
                pg_get_viewdef('pg_temp.timescale_incremental__view_probe'::regclass)
                    = pg_get_viewdef(to_regclass({{ view }}))
                and obj_description(rule.oid, 'pg_rewrite') = {{ dbt.string_literal(fingerprint) }},
                false
            )
            into is_current
            from (select) as one
            left join pg_rewrite as rule
                on rule.ev_class = to_regclass({{ view }}) and rule.rulename = '_RETURN';
            drop view pg_temp.timescale_incremental__view_probe;
            perform set_config('timescale_incremental.view_is_current', is_current::text, true);
        end
        $view_is_current$;
        select current_setting('timescale_incremental.view_is_current') = 'true'
    {%- endset -%}
    {{ return(run_query(compare_sql).columns[0].values()[0]) }}
{%- endmacro %}
