{#- The last `days` stored trading days of a changed symbol before its first changed date,
    latest first, each with what the pass reads of a stored day (its high and low for a replay,
    its number, its recursive state): the body of a lateral subquery over `changed` (a relation
    with symbol and from_date) in int_daily_prices__trading_days. -#}
{% macro trading_days_stored_before_change(changed, days) -%}
select
    stored_days.symbol,
    stored_days.trade_date,
    stored_days.high,
    stored_days.low,
    stored_days.close,
    stored_days.adj_close,
    stored_days.trading_day_number,
    {{ trading_days_resume_state('stored_days') }} as resume_state
from {{ this }} as stored_days
where
    stored_days.symbol = {{ changed }}.symbol
    and stored_days.trade_date < {{ changed }}.from_date
order by stored_days.trade_date desc
limit {{ days }}
{%- endmacro %}
