{#- Fails for each run of `min_run_length` or more identical consecutive values of the column
    within `partition_by`, in `order_by` order: one failing row per run, with where it starts
    and ends and how long it is. A price that does not move for days is usually a feed that
    stopped, not a market. -#}
{% test stale_values(model, column_name, partition_by, order_by, min_run_length=5) %}
    {%- if min_run_length is not number or min_run_length < 2 -%}
        {{ exceptions.raise_compiler_error("stale_values on " ~ model ~ ": min_run_length must be an integer of at least 2, got " ~ min_run_length) }}
    {%- endif %}
    {%- set keys = partition_by | join(', ') %}
with

marked as (

    select
        {{ keys }},
        {{ order_by }} as position,
        {{ column_name }} as value,
        case when {{ column_name }} = lag({{ column_name }}) over (partition by {{ keys }} order by {{ order_by }})
            then 0 else 1 end as starts_run
    from {{ model }}
    where {{ column_name }} is not null

),

numbered as (

    select
        *,
        sum(starts_run) over (partition by {{ keys }} order by position rows unbounded preceding) as run_number
    from marked

),

runs as (

    select
        {{ keys }},
        run_number,
        min(value) as value,
        min(position) as run_start,
        max(position) as run_end,
        count(*) as run_length
    from numbered
    group by {{ keys }}, run_number
    having count(*) >= {{ min_run_length }}

)

select * from runs
{% endtest %}
