-- Average daily trading volume of one symbol in its last *complete* calendar quarter.
--   dbt show -s avg_volume_last_quarter --vars '{symbol: MSFT}'
--   dbt show -s avg_volume_last_quarter --vars '{symbol: MSFT, quarter: latest}'   (may be partial)
--   dbt show -s avg_volume_last_quarter --vars '{symbol: MSFT, quarter: 2020-Q3}'  (that quarter)
-- A quarter is complete when the symbol's data reaches the quarter's last NYSE session (from
-- the nyse_trading_sessions seed; past the seed's last year, the quarter's last calendar day):
-- a file that ends mid-quarter would otherwise average a few weeks and call it a quarter.
{%- set symbol = var('symbol', 'AAPL') %}
{%- set quarter = var('quarter', 'last_complete') | string %}
{%- set asked = modules.re.fullmatch('([0-9]{4})-?Q([1-4])', quarter) %}
{%- if quarter not in ('last_complete', 'latest') and not asked %}
    {{ exceptions.raise_compiler_error(
        "avg_volume_last_quarter: var quarter must be last_complete (the default), latest or YYYY-Qn like 2020-Q3, not '" ~ quarter ~ "'"
    ) }}
{%- endif %}

with

quarterly as (

    select * from {{ ref('fct_price_averages_quarterly') }}

),

symbols as (

    select * from {{ ref('dim_symbols') }}

),

sessions as (

    select * from {{ ref('nyse_trading_sessions') }}

),

of_symbol as (

    select
        quarterly.symbol,
        quarterly.period_start as quarter_start,
        (quarterly.period_start + interval '3 months' - interval '1 day')::date as quarter_end,
        quarterly.trading_days,
        quarterly.avg_volume,
        symbols.last_trade_date
    from quarterly
    inner join symbols
        on quarterly.symbol = symbols.symbol
    where quarterly.symbol = {{ dbt.string_literal(symbol) }}

),

with_last_session as (

    select
        of_symbol.*,
        coalesce(
            (
                select max(sessions.session_date)
                from sessions
                where sessions.session_date between of_symbol.quarter_start and of_symbol.quarter_end
            ),
            of_symbol.quarter_end
        ) as quarter_last_session
    from of_symbol

),

final as (

    -- The answer first: `dbt show` prints six columns.
    select
        symbol,
        extract(year from quarter_start)::int || '-Q' || extract(quarter from quarter_start)::int as quarter,
        avg_volume,
        trading_days,
        last_trade_date >= quarter_last_session as is_complete,
        quarter_start
    from with_last_session
    {%- if asked %}
    where quarter_start = make_date({{ asked.group(1) }}, ({{ asked.group(2) }} - 1) * 3 + 1, 1)
    {%- elif quarter == 'last_complete' %}
    where last_trade_date >= quarter_last_session
    {%- endif %}
    order by quarter_start desc
    limit 1

)

select * from final
