{#- Why safe_cast_double / safe_cast_bigint / number_in_range refused a value: one specific
    reason in words, naming the column (`label`) and quoting the text (long texts shortened to
    their start and length). Only meant for a value the macro turned into null, so it runs on
    the few rejected rows only; the checks follow the cast macros' paths (number_formats). -#}
{% macro quoted_excerpt(column, max_shown=30) -%}
    case
        when length({{ column }}) <= {{ max_shown }} then '''' || {{ column }} || ''''
        else '''' || left({{ column }}, {{ max_shown }}) || '...'' (' || length({{ column }}) || ' characters)'
    end
{%- endmacro %}

{% macro double_rejection_reason(column, label) -%}
    {%- set f = stock_analytics.number_formats() -%}
    {%- set text = stock_analytics.quoted_excerpt(column) -%}
    case
        when length({{ column }}) > {{ f.max_length }}
            then '{{ label }} is too long to be a number ({{ f.max_length }} characters at most): ' || {{ text }}
        when {{ column }} ~ '{{ f.any_exponent }}' and {{ column }} !~ '{{ f.decimal }}'
            then '{{ label }} has an exponent beyond double precision''s range: ' || {{ text }}
        when {{ column }} !~ '{{ f.decimal }}'
            then '{{ label }} is not a finite number: ' || {{ text }}
        when abs(cast({{ column }} as numeric)) > {{ f.double_max }}
            then '{{ label }} overflows double precision (above 1.8e308): ' || {{ text }}
        else '{{ label }} underflows double precision (nonzero, below 2.2e-308): ' || {{ text }}
    end
{%- endmacro %}

{% macro bigint_rejection_reason(column, label) -%}
    {%- set f = stock_analytics.number_formats() -%}
    {%- set text = stock_analytics.quoted_excerpt(column) -%}
    case
        when length({{ column }}) > {{ f.max_length }}
            then '{{ label }} is too long to be a number ({{ f.max_length }} characters at most): ' || {{ text }}
        when {{ column }} ~ '{{ f.any_exponent }}' and {{ column }} !~ '{{ f.decimal }}'
            then '{{ label }} is out of range for bigint: ' || {{ text }}
        when {{ column }} !~ '{{ f.decimal }}'
            then '{{ label }} is not a number: ' || {{ text }}
        when cast({{ column }} as numeric) <> trunc(cast({{ column }} as numeric))
            then '{{ label }} is not a whole number: ' || {{ text }}
        else '{{ label }} is out of range for bigint: ' || {{ text }}
    end
{%- endmacro %}

{% macro range_rejection_reason(column, label) -%}
    {%- set f = stock_analytics.number_formats() -%}
    '{{ label }} is out of range (a price or volume is 0 or {{ f.min_abs }} to {{ f.max_abs }} in size): '
        || {{ stock_analytics.quoted_excerpt(column) }}
{%- endmacro %}
