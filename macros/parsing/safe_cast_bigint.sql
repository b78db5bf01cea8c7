{#- `column` (text) as bigint when it is a whole number (digits, optionally followed by '.0'
    as some exports write volumes), else null; never raises. At most 18 digits, so it fits. -#}
{% macro safe_cast_bigint(column) -%}
    case
        when {{ column }} ~ '^[+-]?[0-9]{1,18}([.]0*)?$'
            then cast(split_part({{ column }}, '.', 1) as bigint)
    end
{%- endmacro %}
