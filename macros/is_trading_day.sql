{#- Which staged rows are trading days (documented in macros/_macros.yml). -#}
{% macro is_trading_day(close_column) -%}
{{ close_column }} is not null
{%- endmacro %}
