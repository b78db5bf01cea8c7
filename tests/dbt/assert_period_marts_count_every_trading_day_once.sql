-- Every trading day of staging (a row with a close) is counted in exactly one period of each
-- period mart: per symbol, the marts' trading_days add up to the staged days. Fails with the
-- symbols and marts where they do not.

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

staged as (

    select symbol, count(*) as trading_days
    from daily_prices
    where close is not null
    group by symbol

),

counted as (

    {%- for period in ['weekly', 'monthly', 'quarterly', 'yearly'] %}
    select '{{ period }}' as mart, symbol, sum(trading_days) as trading_days
    from {{ ref('fct_price_averages_' ~ period) }}
    group by symbol
    {{ 'union all' if not loop.last }}
    {%- endfor %}

),

final as (

    select
        marts.mart,
        coalesce(staged.symbol, counted.symbol) as symbol,
        staged.trading_days as staged_days,
        counted.trading_days as counted_days
    from (values ('weekly'), ('monthly'), ('quarterly'), ('yearly')) as marts (mart)
    cross join staged
    full outer join counted
        on counted.mart = marts.mart and counted.symbol = staged.symbol
    where counted.trading_days is distinct from staged.trading_days

)

select * from final
