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
        case when {{ column_name }} = lag({{ column_name }}) over by_series
            then 0 else 1 end as starts_run
    from {{ model }}
    where {{ column_name }} is not null
    window by_series as (partition by {{ keys }} order by {{ order_by }})

),

numbered as (

    select
        *,
        sum(starts_run) over by_series as run_number
    from marked
    window by_series as (partition by {{ keys }} order by position rows unbounded preceding)

),

-- The rows that are at least the min_run_length-th of their run (the row that many - 1
-- before is in the same run), each with where that row is: only long runs are grouped,
-- not every run of every series (on a first build, a hash of every row).
long_run_rows as (

    select *
    from (
        select
            *,
            lag(run_number, {{ min_run_length - 1 }}) over by_series as earlier_run_number,
            lag(position, {{ min_run_length - 1 }}) over by_series as earlier_position
        from numbered
        window by_series as (partition by {{ keys }} order by position)
    ) as with_earlier
    where run_number = earlier_run_number

),

runs as (

    select
        {{ keys }},
        run_number,
        min(value) as value,
        min(earlier_position) as run_start,
        max(position) as run_end,
        count(*) + {{ min_run_length - 1 }} as run_length
    from long_run_rows
    group by {{ keys }}, run_number

)

select * from runs
{% endtest %}
