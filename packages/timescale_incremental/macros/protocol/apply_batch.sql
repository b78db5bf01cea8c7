{#- The batch an incremental model applies: a temporary table its apply function fills before
    it runs the model's SQL (macros/incremental/). For a model fed by a change log: the changed
    symbols (symbol, from_date; from_date null = the whole history), which its SQL reads. For
    staging's prices: the raw loads to apply (load_id, symbol, recompute), whose ids its SQL
    reads as batch_load_ids(). -#}
{% macro apply_batch() -%}
    pg_temp.{{ this.identifier }}__batch
{%- endmacro %}

{#- The batch's load ids as an array (raw_loads strategy): a PL/pgSQL variable of the apply
    function, so the planner sees a constant. `load_id = any(...)` then both selects the loads'
    pages through raw.daily_prices' BRIN index and checks each row by a hash lookup (an array
    from a subquery is searched element by element: 8,000 loads x 24 M rows). -#}
{% macro batch_load_ids() -%}
    v_batch_load_ids
{%- endmacro %}

{#- True when the model's table exists, i.e. its SQL may read the table itself (the rows an
    incremental step keeps). False while parsing and on the first build. -#}
{% macro incremental_table_exists() -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {{ return(load_relation(this) is not none) }}
{%- endmacro %}
