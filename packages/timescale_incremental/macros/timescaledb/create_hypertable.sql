{#- SQL that turns an (empty) table into a hypertable partitioned on `time_column`. -#}
{% macro create_hypertable(relation, time_column, chunk_time_interval, create_default_indexes=false) -%}
    select create_hypertable(
        '{{ relation }}'::regclass,
        by_range({{ dbt.string_literal(time_column) }}, interval {{ dbt.string_literal(chunk_time_interval) }}),
        create_default_indexes => {{ 'true' if create_default_indexes else 'false' }}
    )
{%- endmacro %}
