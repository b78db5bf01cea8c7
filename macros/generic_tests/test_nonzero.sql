{#- Fails for each row where the column is exactly zero: for volume, a day without trades,
    kept apart from errors (configure it as a warning) so that it can be counted. -#}
{% test nonzero(model, column_name) %}
select * from {{ model }}
where {{ column_name }} = 0
{% endtest %}
