-- One row per symbol that has prices or metadata: the metadata (name, exchange, stock or
-- ETF) with the symbol's price history span. Stock or ETF: macro resolve_asset_type, the
-- same rule staging applies (the metadata wins, the folder fills in).
-- Cheap at any size: two small tables joined (the metadata, and the per-symbol spans that
-- int_daily_prices__symbol_spans keeps for the symbols each build changed).
-- A table indexed by symbol: the API and the report look symbols up one at a time.
{{ config(indexes=[{'columns': ['symbol'], 'unique': true}]) }}

with

symbols as (

    select * from {{ ref('stg_market_data__symbols') }}

),

symbol_spans as (

    select * from {{ ref('int_daily_prices__symbol_spans') }}

),

final as (

    select
        coalesce(symbols.symbol, symbol_spans.symbol) as symbol,
        symbols.security_name,
        {{ resolve_asset_type('symbols.asset_type', 'symbol_spans.asset_type') }} as asset_type,
        symbols.listing_exchange,
        symbols.market_category,
        symbols.is_test_issue,
        symbols.financial_status,
        symbol_spans.first_trade_date,
        symbol_spans.last_trade_date,
        coalesce(symbol_spans.trading_days, 0) as trading_days,
        symbol_spans.symbol is not null as has_prices,
        symbols.symbol is not null as has_metadata
    from symbols
    full outer join symbol_spans
        on symbols.symbol = symbol_spans.symbol

)

select * from final
