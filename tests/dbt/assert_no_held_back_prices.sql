-- The price guard's holds nobody accepted: a symbol whose new bars staging held back (out of
-- the marts) because they are far from its accepted history, or from the other symbols' that
-- session. One row per held load and symbol, with the reason and how to accept it. It runs
-- after every mart (the depends_on lines), so the rest of the universe is built first and a
-- hold fails the build without skipping anything.
-- depends_on: {{ ref('fct_daily_prices') }}
-- depends_on: {{ ref('fct_daily_moving_averages') }}
-- depends_on: {{ ref('fct_price_averages_weekly') }}
-- depends_on: {{ ref('fct_price_averages_monthly') }}
-- depends_on: {{ ref('fct_price_averages_quarterly') }}
-- depends_on: {{ ref('fct_price_averages_yearly') }}
-- depends_on: {{ ref('dim_symbols') }}

with

held_prices as (

    select * from {{ stock_analytics.price_guard_relation('held_prices') }} as holding
    where {{ stock_analytics.is_open_hold('holding') }}

),

final as (

    select
        symbol,
        load_id,
        first_date,
        last_date,
        finding,
        reason,
        held_at,
        'dbt build --vars ''{accept_held_prices: [' || symbol || ']}''' as accept_with
    from held_prices

)

select * from final
