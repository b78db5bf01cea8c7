-- price_series 1.0 (README.md states the contract).
\echo Use "CREATE EXTENSION price_series" to load this file. \quit

-- What the pass gives for a changed trading day; attribute order is the library's (price_series.c).
create type @extschema@.trading_day as (
    trading_day_number bigint,
    sma_20 double precision,
    sma_30 double precision,
    sma_50 double precision,
    sma_200 double precision,
    sma_adjusted_50 double precision,
    sma_adjusted_200 double precision,
    ema_12 double precision,
    ema_26 double precision,
    ema_50 double precision,
    ema_200 double precision,
    macd_fast_ema double precision,
    macd double precision,
    macd_signal double precision,
    rsi_average_gain double precision,
    rsi_average_loss double precision,
    rsi_14 double precision,
    atr_14 double precision,
    rsi_adjusted_average_gain double precision,
    rsi_adjusted_average_loss double precision,
    rsi_adjusted_14 double precision,
    bollinger_upper double precision,
    bollinger_lower double precision,
    return_simple double precision,
    return_log double precision,
    volatility_20 double precision,
    volatility_252 double precision,
    high_252 double precision,
    low_252 double precision
);

create function @extschema@.trading_days_step(
    internal, bigint, double precision, double precision, double precision, double precision,
    double precision[]
)
returns internal
as 'MODULE_PATHNAME', 'trading_days_step'
language c called on null input immutable parallel safe;

create function @extschema@.trading_days_final(internal)
returns @extschema@.trading_day
as 'MODULE_PATHNAME', 'trading_days_final'
language c immutable parallel safe;

-- trading_days(kept_day_number, close, high, low, adj_close, resume_state), a window function
-- over one symbol's days in date order (README.md).
create aggregate @extschema@.trading_days(
    kept_day_number bigint,
    close double precision,
    high double precision,
    low double precision,
    adj_close double precision,
    resume_state double precision[]
) (
    sfunc = @extschema@.trading_days_step,
    stype = internal,
    finalfunc = @extschema@.trading_days_final,
    finalfunc_modify = read_only
);

grant usage on schema @extschema@ to public;
