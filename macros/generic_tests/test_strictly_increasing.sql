{#- Fails for each row whose column is lower than the row before it in `order_by` order within
    `partition_by`: e.g. dates going backwards in a file. Equal values are the uniqueness
    tests' to report. -#}
{% test strictly_increasing(model, column_name, partition_by, order_by) %}
    {%- if partition_by is string or order_by is string -%}
        {{ exceptions.raise_compiler_error("strictly_increasing on " ~ model ~ ": partition_by and order_by must be lists of column names") }}
    {%- endif %}
with

ordered as (

    select
        *,
        lag({{ column_name }}) over (
            partition by {{ partition_by | join(', ') }} order by {{ order_by | join(', ') }}
        ) as previous_value
    from {{ model }}

)

select * from ordered
where {{ column_name }} < previous_value
{% endtest %}
