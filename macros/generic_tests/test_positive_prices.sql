{#- Fails for each row where any of `columns` is zero or negative (Open = 0 is a real Yahoo
    defect). Missing values are not judged here. -#}
{% test positive_prices(model, columns) %}
    {%- if columns is string or columns | length == 0 -%}
        {{ exceptions.raise_compiler_error("positive_prices on " ~ model ~ ": columns must be a non-empty list of column names, got " ~ columns) }}
    {%- endif %}
with

violations as (

    select
        *,
        concat_ws(', '
            {%- for column in columns %},
            case when {{ column }} <= 0 then '{{ column }} = ' || {{ column }} end
            {%- endfor %}
        ) as violation
    from {{ model }}
    where {% for column in columns %}{{ column }} <= 0{{ ' or ' if not loop.last }}{% endfor %}

)

select * from violations
{% endtest %}
