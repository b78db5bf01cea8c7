-- One row per symbol that has prices or metadata: the metadata (name, exchange, stock or
-- ETF) with the symbol's price history span. Stock or ETF: macro resolve_asset_type, the
-- same rule staging applies (the metadata wins, the folder fills in).
-- A table indexed by symbol: the API and the report look symbols up one at a time.
{{ config(indexes=[{'columns': ['symbol'], 'unique': true}]) }}

with

symbols as (

    select * from {{ ref('stg_market_data__symbols') }}

),

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

price_coverage as (

    select
        symbol,
        min(trade_date) as first_trade_date,
        max(trade_date) as last_trade_date,
        count(close) as trading_days,
        -- staging's asset_type, already resolved (metadata, else the file's folder)
        min(asset_type) as price_asset_type
    from daily_prices
    group by symbol

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
