{#- The batch an apply routine fills before it runs the model's SQL (documented in
    macros/_macros.yml; the README's "The batch"). -#}
{% macro apply_batch() -%}
    pg_temp.{{ this.identifier }}__batch
{%- endmacro %}

{% macro batch_load_ids() -%}
    v_batch_load_ids
{%- endmacro %}

{% macro incremental_table_exists() -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {{ return(load_relation(this) is not none) }}
{%- endmacro %}

{#- The materialization creates the batch table for its session, to plan the model's SQL before
    the routine runs (dbt's statements each commit: autocommit); the routine creates it too, for
    callers outside dbt, dropped at commit; when it exists already the routine truncates it. -#}
{% macro create_apply_batch_table(strategy, on_commit_drop=false) -%}
    create table if not exists {{ timescale_incremental.apply_batch() }} (
        {{ timescale_incremental.strategy_macro(strategy, 'batch_columns')() | indent(8) }}
    ){{ ' on commit drop' if on_commit_drop }};
{%- endmacro %}

{#- The macro `<strategy>__<step>` of an apply strategy: the project's own first (as dbt finds a
    custom incremental strategy), then this package's. -#}
{% macro strategy_macro(strategy, step, required=true) -%}
    {%- set name = strategy ~ '__' ~ step -%}
    {%- set found = context.get(name) -%}
    {%- if found is none and name in context.get('timescale_incremental', {}) -%}
        {%- set found = context['timescale_incremental'][name] -%}
    {%- endif -%}
    {%- if found is none and required -%}
        {{ exceptions.raise_compiler_error(
            "apply strategy '" ~ strategy ~ "' has no macro " ~ name
            ~ ": define it in the project (see packages/timescale_incremental/README.md, Apply strategies)") }}
    {%- endif -%}
    {{ return(found) }}
{%- endmacro %}
