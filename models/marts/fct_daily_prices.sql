-- One row per symbol and trading day: the daily bar readers query, without access to
-- staging. A thin view: a query for one symbol and a date range reads the trading days'
-- (symbol, trade_date desc) index and only the chunks of that range.
-- A plain select, no import CTE: TimescaleDB plans its ordered per-chunk scans (MergeAppend,
-- SkipScan) for a view of a hypertable only when the view is not written with a CTE.
{{ config(materialized='view') }}

select
    symbol,
    trade_date,
    open,
    high,
    low,
    close,
    adj_close,
    volume
from {{ ref('int_daily_prices__trading_days') }}
