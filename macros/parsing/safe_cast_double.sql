{#- `column` (text) as double precision when it is a plain finite decimal number, else null.
    NaN, inf and anything else that is not a number give null instead of an error, so one bad
    value cannot fail a build; `rejection_reason` in the base model says why. The exponent is
    capped at two digits so the cast cannot overflow. -#}
{% macro safe_cast_double(column) -%}
    case
        when {{ column }} ~ '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,2})?$'
            then cast({{ column }} as double precision)
    end
{%- endmacro %}
