{#- `column` (text) as double precision when it is a decimal number a double holds (finite,
    and zero or at least the smallest normal double), else null; never raises, for any text
    (NaN, inf, 400 digits, 1e400, 1e-400, a megabyte of junk). Two paths: a plain number of up
    to 30 characters is cast at once (a length check, one regex and the cast); anything else
    is bounded in length and shape, read as numeric (exact) and range-checked against float8's
    limits before the cast (nested CASEs: SQL's AND does not promise to short-circuit before
    a cast). Whether the value is a plausible price: macro number_in_range.
    Why a value was refused: macro double_rejection_reason. -#}
{% macro safe_cast_double(column) -%}
    {%- set f = stock_analytics.number_formats() -%}
    case
        when length({{ column }}) <= {{ f.plain_max_length }} and {{ column }} ~ '{{ f.plain_double }}'
            then cast({{ column }} as double precision)
        when length({{ column }}) <= {{ f.max_length }} then
            case
                when {{ column }} ~ '{{ f.decimal }}' then
                    case
                        when cast({{ column }} as numeric) = 0
                            or abs(cast({{ column }} as numeric))
                                between {{ f.double_min_normal }} and {{ f.double_max }}
                            then cast(cast({{ column }} as numeric) as double precision)
                    end
            end
    end
{%- endmacro %}
