-- One row per symbol with prices: its first and last day in staging, its number of trading
-- days and its staging asset_type (the newest row's, already resolved). dim_symbols joins it
-- with the metadata.
-- A hypertable kept by the package from staging's change log: each changed symbol's row is
-- computed again from its first day (int_daily_prices__symbol_firsts) and two index probes
-- (its last row in staging, its last trading day, whose number is the count); resume_when
-- false, as no row is a state to go on from. So a daily build probes the symbols that changed,
-- not all of them, and only their newest chunks.
{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='upstream_changes',
        changes_of='stg_market_data__daily_prices',
        time_column='last_trade_date',
        resume_when='false',
        indexes=[{'columns': ['symbol', 'last_trade_date'], 'unique': true}]
    )
}}

with

changed_symbols as (

    select * from {{ source('batches', 'int_daily_prices__symbol_spans__batch') }}

),

symbol_firsts as (

    select * from {{ ref('int_daily_prices__symbol_firsts') }}

),

-- Not materialized: the lateral lookups below are index probes into the hypertables.
daily_prices as not materialized (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

trading_days as not materialized (

    select * from {{ ref('int_daily_prices__trading_days') }}

),

final as (

    -- a changed symbol without rows left (none of its live loads had a usable row) has none
    select
        changed_symbols.symbol,
        symbol_firsts.first_trade_date,
        last_row.trade_date as last_trade_date,
        cast(coalesce(last_trading_day.trading_day_number, 0) as bigint) as trading_days,
        last_row.asset_type
    from changed_symbols
    inner join symbol_firsts
        on changed_symbols.symbol = symbol_firsts.symbol
    cross join
        lateral (
            select
                daily_prices.trade_date,
                daily_prices.asset_type
            from daily_prices
            where daily_prices.symbol = changed_symbols.symbol
            order by daily_prices.trade_date desc
            limit 1
        ) as last_row
    left join lateral (
        select trading_days.trading_day_number
        from trading_days
        where trading_days.symbol = changed_symbols.symbol
        order by trading_days.trade_date desc
        limit 1
    ) as last_trading_day on true

)

select * from final
