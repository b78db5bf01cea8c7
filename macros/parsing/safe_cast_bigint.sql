{#- `column` (text) as bigint when it is a whole number a bigint holds (digits, optionally
    '.0' as some exports write volumes, or exponent form such as 1.5e6), else null; never
    raises. Up to 18 characters of digits cast at once; anything else is bounded in length and
    shape, read as numeric and range-checked before the cast, so 9223372036854775808, 30
    digits or 1e400 give null. Plausible size: macro number_in_range. Why refused: macro
    bigint_rejection_reason. -#}
{% macro safe_cast_bigint(column) -%}
    {%- set f = stock_analytics.number_formats() -%}
    case
        when length({{ column }}) <= {{ f.plain_bigint_max_length }} and {{ column }} ~ '{{ f.plain_bigint }}'
            then cast(split_part({{ column }}, '.', 1) as bigint)
        when length({{ column }}) <= {{ f.max_length }} then
            case
                when {{ column }} ~ '{{ f.decimal }}' then
                    case
                        when cast({{ column }} as numeric) = trunc(cast({{ column }} as numeric))
                            and cast({{ column }} as numeric)
                                between -{{ f.bigint_max }} - 1 and {{ f.bigint_max }}
                            then cast(cast({{ column }} as numeric) as bigint)
                    end
            end
    end
{%- endmacro %}
