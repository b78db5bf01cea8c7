-- One row per symbol that has prices or metadata: the metadata (name, exchange, stock or
-- ETF) with the symbol's price history span. Stock or ETF: macro resolve_asset_type, the
-- same rule staging applies (the metadata wins, the folder fills in).
-- Cheap at any size: the symbols come from the live price loads (a few thousand rows of the
-- load log) and the live feed's revisions (a row per symbol and day it delivered), and
-- each symbol's span and count are three index probes, never a scan of the prices: its
-- first and last row in staging, and its last trading day, whose number is the count of
-- trading days.
-- A table indexed by symbol: the API and the report look symbols up one at a time.
{{ config(indexes=[{'columns': ['symbol'], 'unique': true}]) }}

with

symbols as (

    select * from {{ ref('stg_market_data__symbols') }}

),

-- Not materialized: the lateral lookups below are index probes into the hypertables.
daily_prices as not materialized (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

trading_days as not materialized (

    select * from {{ ref('int_daily_prices__trading_days') }}

),

load_log as (

    select * from {{ source('raw', 'load_log') }}

),

feed_revisions as (

    select * from {{ source('raw', 'feed_revisions') }}

),

price_symbols as (

    -- Staging holds rows of live loads only: the files' (one symbol a load) and the live
    -- feed's (many symbols a load; each (symbol, date) it delivered is in feed_revisions).
    select load_log.symbol
    from load_log
    where
        load_log.file_kind = 'prices'
        and {{ is_live_load('load_log') }}
    union
    select feed_revisions.symbol
    from feed_revisions

),

price_coverage as (

    select
        price_symbols.symbol,
        first_row.trade_date as first_trade_date,
        last_row.trade_date as last_trade_date,
        cast(coalesce(last_trading_day.trading_day_number, 0) as bigint) as trading_days,
        -- staging's asset_type, already resolved (metadata, else the folder of the newest row's file)
        last_row.asset_type as price_asset_type
    from price_symbols
    -- a live load without a usable row leaves the symbol without prices: no row here
    cross join
        lateral (
            select daily_prices.trade_date
            from daily_prices
            where daily_prices.symbol = price_symbols.symbol
            order by daily_prices.trade_date
            limit 1
        ) as first_row
    cross join
        lateral (
            select
                daily_prices.trade_date,
                daily_prices.asset_type
            from daily_prices
            where daily_prices.symbol = price_symbols.symbol
            order by daily_prices.trade_date desc
            limit 1
        ) as last_row
    left join lateral (
        select trading_days.trading_day_number
        from trading_days
        where trading_days.symbol = price_symbols.symbol
        order by trading_days.trade_date desc
        limit 1
    ) as last_trading_day on true

),

final as (

    select
        coalesce(symbols.symbol, price_coverage.symbol) as symbol,
        symbols.security_name,
        {{ resolve_asset_type('symbols.asset_type', 'price_coverage.price_asset_type') }} as asset_type,
        symbols.listing_exchange,
        symbols.market_category,
        symbols.is_test_issue,
        symbols.financial_status,
        price_coverage.first_trade_date,
        price_coverage.last_trade_date,
        coalesce(price_coverage.trading_days, 0) as trading_days,
        price_coverage.symbol is not null as has_prices,
        symbols.symbol is not null as has_metadata
    from symbols
    full outer join price_coverage
        on symbols.symbol = price_coverage.symbol

)

select * from final
