{#- Fails for each day whose close moved by more than `max_ratio` times (up, or down to below
    1/max_ratio) from the day before while the adj_close / close ratio stayed put (within
    `ratio_tolerance`, relative). Yahoo's close is split-adjusted already, so such a jump is
    not a split: most likely a bad print or a unit change. Only positive prices are judged. -#}
{% test unexplained_jumps(model, close_column='close', adj_close_column='adj_close', partition_by=['symbol'],
                          order_by='trade_date', max_ratio=3, ratio_tolerance=0.01) %}
    {%- if max_ratio is not number or max_ratio <= 1 -%}
        {{ exceptions.raise_compiler_error("unexplained_jumps on " ~ model ~ ": max_ratio must be a number above 1, got " ~ max_ratio) }}
    {%- endif %}
with

priced as (

    select
        *,
        lag({{ close_column }}) over by_series as previous_close,
        lag({{ adj_close_column }}) over by_series as previous_adj_close
    from {{ model }}
    where {{ close_column }} > 0 and {{ adj_close_column }} > 0
    window by_series as (partition by {{ partition_by | join(', ') }} order by {{ order_by }})

),

moves as (

    select
        *,
        {{ close_column }} / previous_close as close_ratio,
        ({{ adj_close_column }} / {{ close_column }}) / (previous_adj_close / previous_close) - 1 as adjustment_change
    from priced
    where previous_close is not null

)

select * from moves
where (close_ratio > {{ max_ratio }} or close_ratio < 1.0 / {{ max_ratio }})
  and abs(adjustment_change) <= {{ ratio_tolerance }}
{% endtest %}
