{#- Fails for each row where the column is exactly zero: for volume, a day without trades,
    kept apart from errors (configure it as a warning, or give it a rate guard: max_share,
    share_of, min_findings, macro rate_guard) so that it can be counted. -#}
{% test nonzero(model, column_name, max_share=none, share_of='rows', min_findings=100) %}
{%- call stock_analytics.rate_guard(model, max_share, share_of, min_findings, finding=column_name ~ ' = 0') %}
select * from {{ model }}
where {{ column_name }} = 0
{%- endcall %}
{% endtest %}
