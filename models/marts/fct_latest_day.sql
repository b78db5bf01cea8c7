-- The screener: one row per symbol, its last trading day with its close, day change, moving
-- averages, indicators and the flags a screen asks for (crossed its 50 or 200-day SMA today,
-- golden or death cross, RSI above 70 or below 30). The flags are computed on adj_close, so a
-- split the close is not adjusted for never flags a cross or an RSI extreme: the SMAs of
-- adj_close are the SMAs of the close on a split-consistent series, and the RSI flags read
-- rsi_adjusted_14 (docs/indicators.md).
-- A hypertable kept by the package from the trading days' change log: each changed symbol's
-- row is read again from its last stored day and the day before it (with the adjusted SMAs the
-- trading days store); resume_when false, as no row is a state to go on from.
{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='upstream_changes',
        changes_of='int_daily_prices__trading_days',
        time_column='trade_date',
        resume_when='false',
        indexes=[{'columns': ['symbol', 'trade_date'], 'unique': true}]
    )
}}

with

changed_symbols as (

    select * from {{ source('batches', 'fct_latest_day__batch') }}

),

-- Not materialized: the two lateral lookups below are index probes into the hypertable.
trading_days as not materialized (

    select * from {{ ref('int_daily_prices__trading_days') }}

),

last_day as (

    select last_day.*
    from changed_symbols
    cross join lateral (
        select trading_days.*
        from trading_days
        where trading_days.symbol = changed_symbols.symbol
        order by trading_days.trade_date desc
        limit 1
    ) as last_day

),

-- Looked for only when the symbol has one: a probe for a day that does not exist would walk
-- every chunk of the trading days to find none.
with_day_before as (

    select
        last_day.*,
        day_before.adj_close as previous_adj_close,
        day_before.sma_adjusted_50 as previous_sma_adjusted_50,
        day_before.sma_adjusted_200 as previous_sma_adjusted_200
    from last_day
    left join lateral (
        select
            trading_days.adj_close,
            trading_days.sma_adjusted_50,
            trading_days.sma_adjusted_200
        from trading_days
        where last_day.trading_day_number > 1
            and trading_days.symbol = last_day.symbol
            and trading_days.trade_date < last_day.trade_date
        order by trading_days.trade_date desc
        limit 1
    ) as day_before on true

),

final as (

    select
        symbol,
        trade_date,
        close,
        return_simple as day_change,
        sma_20,
        sma_50,
        sma_200,
        ema_12,
        ema_26,
        ema_50,
        ema_200,
        macd,
        macd_signal,
        macd_histogram,
        rsi_14,
        atr_14,
        bollinger_upper,
        sma_20 as bollinger_middle,
        bollinger_lower,
        volatility_20,
        volatility_252,
        high_252,
        low_252,
        adj_close > sma_adjusted_50 and previous_adj_close <= previous_sma_adjusted_50 as crossed_above_sma_50,
        adj_close < sma_adjusted_50 and previous_adj_close >= previous_sma_adjusted_50 as crossed_below_sma_50,
        adj_close > sma_adjusted_200 and previous_adj_close <= previous_sma_adjusted_200 as crossed_above_sma_200,
        adj_close < sma_adjusted_200 and previous_adj_close >= previous_sma_adjusted_200 as crossed_below_sma_200,
        sma_adjusted_50 > sma_adjusted_200 and previous_sma_adjusted_50 <= previous_sma_adjusted_200 as golden_cross,
        sma_adjusted_50 < sma_adjusted_200 and previous_sma_adjusted_50 >= previous_sma_adjusted_200 as death_cross,
        rsi_adjusted_14 > 70 as rsi_above_70,
        rsi_adjusted_14 < 30 as rsi_below_30
    from with_day_before

)

select * from final
