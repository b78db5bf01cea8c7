-- The standard indicators per symbol and trading day (docs/indicators.md: each column's
-- convention, TA-Lib's for the averages, numpy's for returns and volatility). A thin view:
-- int_daily_prices__trading_days keeps them up to date incrementally (the recursive ones from
-- the state stored on the day before a change, the windows from exact running sums), so a
-- query reads stored values through the (symbol, trade_date desc) index.
-- A plain select, no import CTE: TimescaleDB plans its ordered per-chunk scans (MergeAppend,
-- SkipScan) for a view of a hypertable only when the view is not written with a CTE.
{{ config(materialized='view') }}

select
    symbol,
    trade_date,
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
    return_simple,
    return_log,
    volatility_20,
    volatility_252,
    high_252,
    low_252
from {{ ref('int_daily_prices__trading_days') }}
