{#- Fails for each bar whose prices contradict each other: low above the open or close, high
    below them, or low above high. Only bars whose four prices are all positive are judged;
    zero, negative and missing prices are the positive_prices and no_empty_rows tests' to report. -#}
{% test ohlc_consistent(model, open_column='open', high_column='high', low_column='low', close_column='close') %}
with

bars as (

    select * from {{ model }}
    where {{ open_column }} > 0 and {{ high_column }} > 0 and {{ low_column }} > 0 and {{ close_column }} > 0

),

violations as (

    select
        *,
        concat_ws('; ',
            case when {{ low_column }} > {{ high_column }} then 'low above high' end,
            case when {{ low_column }} > least({{ open_column }}, {{ close_column }}) then 'low above open or close' end,
            case when {{ high_column }} < greatest({{ open_column }}, {{ close_column }}) then 'high below open or close' end
        ) as violation
    from bars
    where {{ low_column }} > {{ high_column }}
       or {{ low_column }} > least({{ open_column }}, {{ close_column }})
       or {{ high_column }} < greatest({{ open_column }}, {{ close_column }})

)

select * from violations
{% endtest %}
