-- Every trading day of staging (a row with a close) is counted in exactly one period of each
-- period mart: per symbol, the marts' trading_days from a period start on add up to the
-- symbol's trading days from that date on. Checked from the period holding each symbol's first
-- change in this build (macro changed_ranges on int_daily_prices__trading_days, which feeds the
-- marts): the periods an incremental step had to touch. The trading days from a date on are
-- counted by int_daily_prices__trading_days' numbering, not by counting rows again: the
-- symbol's number of trading days (int_daily_prices__symbol_spans keeps the number of its last
-- one) less the number of its last trading day before that date (assert_trading_days_continue_their_series
-- checks the numbers go on by one). The marts read staging and the trading days are computed
-- apart from them, so the two agree only if both counted every staged day once. Two index
-- probes a period, whatever its length. --vars '{full_tests: true}' counts every symbol's
-- staged rows instead. Fails with the symbols and marts where the counts differ.
{%- set count_staged_rows = 'true' if var('full_tests', false) else 'false' %}
{%- set periods = {'weekly': '1 week', 'monthly': '1 month', 'quarterly': '3 months', 'yearly': '1 year'} %}

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

symbol_spans as (

    select * from {{ ref('int_daily_prices__symbol_spans') }}

),

trading_days as not materialized (

    -- probed by (symbol, trade_date) below: inlined, not scanned whole
    select * from {{ ref('int_daily_prices__trading_days') }}

),

changed_symbols as (

    {%- if var('full_tests', false) %}
    select distinct
        symbol,
        cast('-infinity' as date) as range_start
    from daily_prices
    {%- else %}
    {{ timescale_incremental.changed_ranges(ref('int_daily_prices__trading_days')) | indent(4) }}
    {%- endif %}

),

period_starts as (

    {%- for period, bucket_width in periods.items() %}
    select
        symbol,
        '{{ period }}' as mart,
        case
            when range_start = '-infinity' then range_start
            else {{ timescale_incremental.time_bucket(bucket_width, 'range_start') }}
        end as period_start
    from changed_symbols
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

marts as (

    {%- for period in periods %}
    select
        '{{ period }}' as mart,
        symbol,
        period_start,
        trading_days
    from {{ ref('fct_price_averages_' ~ period) }}
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

counted as (

    select
        period_starts.symbol,
        period_starts.mart,
        period_starts.period_start,
        coalesce(
            staged.trading_days,
            coalesce(symbol_spans.trading_days, 0) - coalesce(day_before_start.trading_day_number, 0)
        ) as staged_days,
        coalesce(in_mart.trading_days, 0) as counted_days
    from period_starts
    left join symbol_spans
        on
            not {{ count_staged_rows }}
            and period_starts.symbol = symbol_spans.symbol
    left join lateral (
        -- the last trading day before the period: its number is the count of those before
        select trading_days.trading_day_number
        from trading_days
        where
            not {{ count_staged_rows }}
            and trading_days.symbol = period_starts.symbol
            and trading_days.trade_date < period_starts.period_start
        order by trading_days.trade_date desc
        limit 1
    ) as day_before_start on true
    left join lateral (
        -- full_tests: the staged rows counted (no row otherwise: a one-time filter)
        select count(*) as trading_days
        from daily_prices
        where
            {{ count_staged_rows }}
            and daily_prices.symbol = period_starts.symbol
            and daily_prices.trade_date >= period_starts.period_start
            and {{ is_trading_day('daily_prices.close') }}
        having {{ count_staged_rows }}
    ) as staged on true
    left join lateral (
        select sum(marts.trading_days) as trading_days
        from marts
        where
            marts.mart = period_starts.mart
            and marts.symbol = period_starts.symbol
            and marts.period_start >= period_starts.period_start
    ) as in_mart on true

),

final as (

    select * from counted
    where staged_days <> counted_days

)

select * from final
