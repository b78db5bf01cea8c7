{#- Fails for each row where every one of `columns` is null: a date and nothing else, as Yahoo
    writes some holidays (BAC 1995-05-29). -#}
{% test no_empty_rows(model, columns) %}
    {%- if columns is string or columns | length == 0 -%}
        {{ exceptions.raise_compiler_error("no_empty_rows on " ~ model ~ ": columns must be a non-empty list of column names, got " ~ columns) }}
    {%- endif %}
select * from {{ model }}
where {% for column in columns %}{{ column }} is null{{ ' and ' if not loop.last }}{% endfor %}
{% endtest %}
