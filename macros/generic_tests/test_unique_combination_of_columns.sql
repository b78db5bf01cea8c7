{#- Fails for each combination of `combination_of_columns` that occurs more than once in the
    model; the failing rows are the duplicated key values with how often each occurs. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- if combination_of_columns is string or combination_of_columns | length < 2 -%}
        {{ exceptions.raise_compiler_error(
            "unique_combination_of_columns on " ~ model ~ ": combination_of_columns must be a list of "
            ~ "two or more column names, got " ~ combination_of_columns) }}
    {%- endif -%}
    {%- set columns = combination_of_columns | join(', ') %}

with

duplicates as (

    select
        {{ columns }},
        count(*) as occurrences
    from {{ model }}
    group by {{ columns }}
    having count(*) > 1

)

select * from duplicates
{% endtest %}
