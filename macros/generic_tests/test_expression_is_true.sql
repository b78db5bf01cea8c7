{#- Fails for each row where `expression` (SQL over the model's columns) is not true. -#}
{% test expression_is_true(model, expression) %}
    {%- if expression is not string or expression | trim == '' -%}
        {{ exceptions.raise_compiler_error("expression_is_true on " ~ model ~ ": expression must be SQL text, got " ~ expression) }}
    {%- endif %}
select * from {{ model }}
where not coalesce({{ expression }}, false)
{% endtest %}
