{#- Fails for each row where `expression` (SQL over the model's columns) is not true.
    max_share, share_of, min_findings: the rate guard (macro rate_guard). -#}
{% test expression_is_true(model, expression, max_share=none, share_of='rows', min_findings=100) %}
    {%- if expression is not string or expression | trim == '' -%}
        {{ exceptions.raise_compiler_error("expression_is_true on " ~ model ~ ": expression must be SQL text, got " ~ expression) }}
    {%- endif %}
{%- call stock_analytics.rate_guard(model, max_share, share_of, min_findings, finding='rows where not ' ~ expression) %}
select * from {{ model }}
where not coalesce({{ expression }}, false)
{%- endcall %}
{% endtest %}
