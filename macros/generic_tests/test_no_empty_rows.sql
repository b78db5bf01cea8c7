{#- Fails for each row where every one of `columns` is null: a date and nothing else, as Yahoo
    writes some holidays (BAC 1995-05-29). max_share, share_of, min_findings: the rate guard
    (macro rate_guard). -#}
{% test no_empty_rows(model, columns, max_share=none, share_of='rows', min_findings=100) %}
    {%- if columns is string or columns | length == 0 -%}
        {{ exceptions.raise_compiler_error("no_empty_rows on " ~ model ~ ": columns must be a non-empty list of column names, got " ~ columns) }}
    {%- endif %}
{%- call stock_analytics.rate_guard(model, max_share, share_of, min_findings, finding='empty rows') %}
select * from {{ model }}
where {% for column in columns %}{{ column }} is null{{ ' and ' if not loop.last }}{% endfor %}
{%- endcall %}
{% endtest %}
