{#- Fails for each day where the adj_close / close ratio changed by more than `tolerance`
    (relative) from the day before: the mark of a dividend, or of a split the close was not
    adjusted for. Reported for inspection (configure as a warning): real dividends appear here. -#}
{% test adjustment_steps(model, close_column='close', adj_close_column='adj_close', partition_by=['symbol'],
                         order_by='trade_date', tolerance=0.0001) %}
with

ratios as (

    select
        *,
        {{ adj_close_column }} / {{ close_column }} as adjustment_ratio,
        lag({{ adj_close_column }} / {{ close_column }}) over (
            partition by {{ partition_by | join(', ') }} order by {{ order_by }}
        ) as previous_adjustment_ratio
    from {{ model }}
    where {{ close_column }} > 0 and {{ adj_close_column }} > 0

)

select
    *,
    adjustment_ratio / previous_adjustment_ratio - 1 as adjustment_change
from ratios
where abs(adjustment_ratio / previous_adjustment_ratio - 1) > {{ tolerance }}
{% endtest %}
