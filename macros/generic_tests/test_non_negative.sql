{#- Fails for each row where the column is below zero. Zero passes: see test `nonzero`. -#}
{% test non_negative(model, column_name) %}
select * from {{ model }}
where {{ column_name }} < 0
{% endtest %}
