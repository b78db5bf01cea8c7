{#- `value` (a parsed double precision or bigint) when it is 0 or between number_formats'
    min_abs (1e-20) and max_abs (1e15) in size, the range of any real price or day's volume
    and what the tests' ratios and the marts' sums can compute with; else null. Plain
    comparisons on the parsed value: no text is read again. -#}
{% macro number_in_range(value, data_type='double precision') -%}
    {%- set f = stock_analytics.number_formats() -%}
    case
        when {{ value }} = 0
            or (abs({{ value }}) >= cast({{ f.min_abs }} as {{ data_type }})
                and abs({{ value }}) < cast({{ f.max_abs }} as {{ data_type }}))
            then {{ value }}
    end
{%- endmacro %}
