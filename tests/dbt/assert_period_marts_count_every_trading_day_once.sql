-- Every trading day of staging (a row with a close) is counted in exactly one period of each
-- period mart: per symbol, the marts' trading_days from a period start on add up to the
-- staged days from that date on. Checked from the period holding each symbol's first change
-- in this build (macro changed_ranges on int_daily_prices__trading_days, which feeds the
-- marts): the periods an incremental step had to touch. A symbol whose whole history changed
-- (a first build) is compared with its number of trading days as int_daily_prices__symbol_spans
-- keeps it (the number of its last trading day, which assert_trading_days_continue_their_series
-- checks), not by counting its rows again. --vars '{full_tests: true}' counts every symbol's
-- staged rows. Fails with the symbols and marts where the counts differ.
{%- set whole_histories_from_spans = 'false' if var('full_tests', false) else 'true' %}
{%- set periods = {'weekly': '1 week', 'monthly': '1 month', 'quarterly': '3 months', 'yearly': '1 year'} %}

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

symbol_spans as (

    select * from {{ ref('int_daily_prices__symbol_spans') }}

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
        coalesce(whole_history.trading_days, staged.trading_days) as staged_days,
        coalesce(in_mart.trading_days, 0) as counted_days
    from period_starts
    left join symbol_spans as whole_history
        on
            {{ whole_histories_from_spans }}
            and period_starts.period_start = '-infinity'
            and period_starts.symbol = whole_history.symbol
    left join lateral (
        -- a whole history counted above is not counted again (a one-time filter)
        select count(*) as trading_days
        from daily_prices
        where
            not ({{ whole_histories_from_spans }} and period_starts.period_start = '-infinity')
            and daily_prices.symbol = period_starts.symbol
            and daily_prices.trade_date >= period_starts.period_start
            and {{ is_trading_day('daily_prices.close') }}
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
