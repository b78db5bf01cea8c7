{#- Custom schemas are used as named (raw, staging, intermediate, marts, seeds, audit) so that
    relations land in the same, predictable place for every user; separate environments use
    separate databases (PGDATABASE) rather than prefixed schemas. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
