{#- Overrides dbt's seed materialization. Why: dbt reads and reloads every seed on every build
    (the calendar: 1.6 s of a build that has nothing new to do, most of it reading the CSV);
    here a seed whose file and config are those of its last load is left as it is. The table's
    comment holds their fingerprint; a full refresh, a changed file or config, a seed dbt
    checksums by path (a file over 1 MB) or one whose docs go into that comment loads as dbt
    does. -#}
{% materialization seed, adapter='postgres' %}
    {%- set file_and_config = model.checksum.name ~ model.checksum.checksum ~ tojson(model.config, sort_keys=true) -%}
    {%- set fingerprint = 'dbt seed ' ~ local_md5(file_and_config) -%}
    {%- set may_skip = model.checksum.name == 'sha256'
        and not should_full_refresh()
        and not config.persist_relation_docs() -%}
    {%- set old_relation = adapter.get_relation(database=database, schema=schema, identifier=model['alias']) -%}
    {%- if may_skip and old_relation is not none and old_relation.is_table
        and seed_fingerprint(old_relation) == fingerprint -%}
        {%- do store_result('agate_table', response='OK') -%}
        {%- call noop_statement('main', 'UNCHANGED', 'UNCHANGED', 0) -%}
            -- the file and config are those of the last load: nothing to do
        {%- endcall -%}
        {{ return({'relations': [this.incorporate(type='table')]}) }}
    {%- endif -%}
    {%- set result = dbt.materialization_seed_default() -%}
    {%- if not config.persist_relation_docs() -%}
        {%- call statement('seed_fingerprint') -%}
            comment on table {{ this }} is {{ dbt.string_literal(fingerprint) }}
        {%- endcall -%}
    {%- endif -%}
    {{ return(result) }}
{% endmaterialization %}

{#- The fingerprint the seed override stored on the table, or none. -#}
{% macro seed_fingerprint(relation) -%}
    {%- set comment = run_query(
        "select obj_description(" ~ timescale_incremental.regclass_literal(relation) ~ ", 'pg_class')"
    ).columns[0].values()[0] -%}
    {{ return(comment) }}
{%- endmacro %}
