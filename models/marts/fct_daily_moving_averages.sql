-- Simple moving averages of the close over the last 20, 30, 50 and 200 trading days of each
-- symbol. A thin view: int_daily_prices__trading_days keeps them up to date incrementally
-- (from running sums, exact), so a query reads stored values: one symbol through the
-- (symbol, trade_date desc) index, the latest row of every symbol by a SkipScan.
-- A plain select, no import CTE: TimescaleDB plans its ordered per-chunk scans (MergeAppend,
-- SkipScan) for a view of a hypertable only when the view is not written with a CTE.
{{ config(materialized='view') }}

select
    symbol,
    trade_date,
    close,
    sma_20,
    sma_30,
    sma_50,
    sma_200
from {{ ref('int_daily_prices__trading_days') }}
