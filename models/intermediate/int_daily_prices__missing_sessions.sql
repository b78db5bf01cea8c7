-- The NYSE sessions inside each symbol's listed life (first to last row) with no row: gaps in
-- the data, for inspection. The no_missing_sessions test reports the same rows.

{{ missing_sessions(ref('stg_market_data__daily_prices'), ref('nyse_trading_sessions')) }}
