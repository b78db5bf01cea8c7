-- One row per symbol and trading day (a day with a close), numbered from 1 per symbol: the
-- 20, 30, 50 and 200-day simple moving averages and the indicators
-- (docs/indicators.md). The daily marts are thin views of it and the period marts aggregate it.
-- A hypertable kept up to date from the change log of staging (materialization
-- incremental_hypertable, strategy upstream_changes): for each changed symbol, its rows from
-- the first changed date on are computed again, going on from the 252 trading days stored
-- before that date (the longest window) and from the state of the recursive indicators on the
-- last of them (resume_when: every indicator has started there; otherwise the whole symbol is
-- computed again). Appended days cost one look-back, a corrected history the symbol from the
-- correction on.
-- Every value comes from one ordered pass a symbol (the extension price_series), which sums
-- each window afresh: no running sum carries rounding from day to day.
-- The unique index runs (symbol, trade_date desc): one symbol's range, and the latest day of
-- every symbol (a SkipScan on the community edition), are index scans.
{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='upstream_changes',
        changes_of='stg_market_data__daily_prices',
        time_column='trade_date',
        resume_when='trading_day_number >= 252 and atr_14 is not null and rsi_adjusted_14 is not null',
        indexes=[{'columns': ['symbol', 'trade_date desc'], 'unique': true}],
        compress_segmentby='symbol',
        compress_orderby='trade_date desc'
    )
}}

with

changed_symbols as (

    -- Per symbol, the first date staging changed (null: the whole history): the batch its
    -- routine fills from staging's change log (strategy upstream_changes).
    select * from {{ source('batches', 'int_daily_prices__trading_days__batch') }}

),

daily_prices as not materialized (

    -- read twice below: inlined into each read, not scanned whole once
    select * from {{ ref('stg_market_data__daily_prices') }}

),

changed_trading_days as (

    -- A row without a close (an empty holiday row some files carry) is not a trading day.
    -- A symbol with a first changed date: its rows from that date, under one bound for all such
    -- symbols (the earliest), so that the chunks before every change are skipped once, not
    -- looked at again for each symbol.
    select daily_prices.*
    from daily_prices
    inner join changed_symbols
        on daily_prices.symbol = changed_symbols.symbol
    where
        daily_prices.trade_date >= changed_symbols.from_date
        and daily_prices.trade_date >= (
            select coalesce(min(earliest.from_date), 'infinity')
            from changed_symbols as earliest
        )
        and {{ is_trading_day('daily_prices.close') }}
    union all
    -- A symbol computed whole (null from_date): all of its rows.
    select daily_prices.*
    from daily_prices
    inner join changed_symbols
        on daily_prices.symbol = changed_symbols.symbol
    where
        changed_symbols.from_date is null
        and {{ is_trading_day('daily_prices.close') }}

),

kept_trading_days as (

    -- The stored trading days just before each change (the longest window: high_252, low_252,
    -- volatility_252): numbers and windows go on from them, the recursive indicators from the
    -- state stored on the last of them (given on each: one array a row costs less than finding
    -- the last). The symbols are probed in their order: a table built from scratch holds each
    -- chunk's rows by symbol, so the probes read each chunk forwards, not at random (on a cold
    -- cache, Kaggle scale, the look-back of a day took a third of the time it took in the
    -- batch's hash order; the same on a warm one).
    {%- if timescale_incremental.incremental_table_exists() %}
    select kept.*
    from (
        select * from changed_symbols
        order by symbol
    ) as changed_symbols
    inner join lateral (
        select
            stored_days.symbol,
            stored_days.trade_date,
            stored_days.close,
            stored_days.adj_close,
            stored_days.trading_day_number,
            {{ trading_days_resume_state('stored_days') }} as resume_state
        from {{ this }} as stored_days
        where
            stored_days.symbol = changed_symbols.symbol
            and stored_days.trade_date < changed_symbols.from_date
        order by stored_days.trade_date desc
        limit 252
    ) as kept on true
    {%- else %}
    select
        symbol,
        trade_date,
        close,
        adj_close,
        cast(null as bigint) as trading_day_number,
        cast(null as double precision[]) as resume_state
    from changed_trading_days
    where false
    {%- endif %}

),

day_sequence as (

    select
        symbol,
        trade_date,
        open,
        high,
        low,
        close,
        adj_close,
        volume,
        load_id,
        cast(null as bigint) as kept_day_number,
        cast(null as double precision[]) as resume_state
    from changed_trading_days
    union all
    select
        symbol,
        trade_date,
        null as open,
        null as high,
        null as low,
        close,
        adj_close,
        null as volume,
        null as load_id,
        trading_day_number as kept_day_number,
        resume_state
    from kept_trading_days

),

passed as (

    -- One ordered pass a symbol (the extension price_series, price_series/README.md): a kept
    -- day only enters the windows, a changed one gets its number and every value.
    select
        *,
        price_series.trading_days(kept_day_number, close, high, low, adj_close, resume_state) over (
            partition by symbol order by trade_date rows unbounded preceding
        ) as day_values
    from day_sequence

),

final as (

    select
        symbol,
        trade_date,
        open,
        high,
        low,
        close,
        adj_close,
        volume,
        load_id,
        (day_values).trading_day_number as trading_day_number,
        (day_values).sma_20 as sma_20,
        (day_values).sma_30 as sma_30,
        (day_values).sma_50 as sma_50,
        (day_values).sma_200 as sma_200,
        (day_values).sma_adjusted_50 as sma_adjusted_50,
        (day_values).sma_adjusted_200 as sma_adjusted_200,
        (day_values).ema_12 as ema_12,
        (day_values).ema_26 as ema_26,
        (day_values).ema_50 as ema_50,
        (day_values).ema_200 as ema_200,
        (day_values).macd_fast_ema as macd_fast_ema,
        (day_values).macd as macd,
        (day_values).macd_signal as macd_signal,
        (day_values).macd - (day_values).macd_signal as macd_histogram,
        (day_values).rsi_average_gain as rsi_average_gain,
        (day_values).rsi_average_loss as rsi_average_loss,
        (day_values).rsi_14 as rsi_14,
        (day_values).atr_14 as atr_14,
        (day_values).rsi_adjusted_average_gain as rsi_adjusted_average_gain,
        (day_values).rsi_adjusted_average_loss as rsi_adjusted_average_loss,
        (day_values).rsi_adjusted_14 as rsi_adjusted_14,
        (day_values).bollinger_upper as bollinger_upper,
        (day_values).bollinger_lower as bollinger_lower,
        (day_values).return_simple as return_simple,
        (day_values).return_log as return_log,
        (day_values).volatility_20 as volatility_20,
        (day_values).volatility_252 as volatility_252,
        (day_values).high_252 as high_252,
        (day_values).low_252 as low_252
    from passed
    where kept_day_number is null

)

select * from final
