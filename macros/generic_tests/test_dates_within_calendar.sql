{#- Fails for each row dated after the last session of the trading calendar `sessions`: the
    calendar seed has run out, so the missing-sessions test cannot see gaps there. One row per
    (symbol, date) past the calendar, with the calendar's last session. A warning by nature:
    the prices are fine, the calendar needs regenerating (scripts/generate_nyse_calendar.py). -#}
{% test dates_within_calendar(model, sessions, symbol_column='symbol', date_column='trade_date',
                              session_column='session_date') %}
with

calendar_end as (

    select max({{ session_column }}) as last_session from {{ sessions }}

),

prices as (

    select
        {{ symbol_column }} as symbol,
        {{ date_column }} as trade_date
    from {{ model }}

),

past_the_calendar as (

    select
        prices.symbol,
        prices.trade_date,
        calendar_end.last_session
    from prices
    cross join calendar_end
    where prices.trade_date > calendar_end.last_session

)

select * from past_the_calendar
{% endtest %}
