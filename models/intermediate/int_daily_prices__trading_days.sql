-- One row per symbol and trading day (a day with a close), numbered from 1 per symbol: the
-- 20, 30, 50 and 200-day simple moving averages and the indicators
-- (docs/indicators.md). The daily marts are thin views of it and the period marts aggregate it.
-- A hypertable kept up to date from the change log of staging (materialization
-- incremental_hypertable, strategy upstream_changes): for each changed symbol, its rows from
-- the first changed date on are computed again, going on from the 252 trading days stored
-- before that date (the longest window) and from the state of the recursive indicators on the
-- last of them (resume_when: every indicator has started there, or the 252 days reach back to
-- the symbol's first, which the pass then replays; otherwise the whole symbol is computed
-- again). Appended days go on from the last stored day and its carried windows (the last 252
-- closes and adj_closes, kept with the table: one row a symbol read, not 252); a corrected
-- history reads the 252 days before the correction and computes the symbol from it on.
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
        resume_when='trading_day_number < 252 or (atr_14 is not null and rsi_adjusted_14 is not null)',
        carried_windows={'columns': ['close', 'adj_close'], 'length': 252},
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

resumed_from_windows as materialized (

    -- A changed symbol whose carried windows (its last 252 closes and adj_closes, kept with the
    -- table: config carried_windows) end on its last stored day before the change: that day
    -- alone stands for the 252, its resume state followed by the windows. Probed in symbol
    -- order: a table built from scratch holds each chunk's rows by symbol, so the probes read
    -- each chunk forwards, not at random.
    -- depends_on: {{ source('windows', 'int_daily_prices__trading_days__windows') }}
    {%- if timescale_incremental.incremental_table_exists() %}
    select
        last_stored_day.symbol,
        last_stored_day.trade_date,
        last_stored_day.high,
        last_stored_day.low,
        last_stored_day.close,
        last_stored_day.adj_close,
        last_stored_day.trading_day_number,
        last_stored_day.resume_state || windows.close || windows.adj_close as resume_state
    from (
        select * from changed_symbols
        order by symbol
    ) as changed_symbols
    inner join {{ source('windows', 'int_daily_prices__trading_days__windows') }} as windows
        on
            changed_symbols.symbol = windows.symbol
            and changed_symbols.from_date > windows.trade_date
            and cardinality(windows.close) = 252
    inner join lateral (
        {{ trading_days_stored_before_change('changed_symbols', 1) | indent(8) }}
    ) as last_stored_day on windows.trade_date = last_stored_day.trade_date
    {%- else %}
    select
        symbol,
        trade_date,
        high,
        low,
        close,
        adj_close,
        cast(null as bigint) as trading_day_number,
        cast(null as double precision[]) as resume_state
    from changed_trading_days
    where false
    {%- endif %}

),

kept_trading_days as (

    -- Any other changed symbol with a first changed date: the stored trading days just before
    -- it (the longest window: high_252, low_252, volatility_252); numbers and windows go on
    -- from them, the recursive indicators from the state stored on the last of them (given on
    -- each: one array a row costs less than finding the last), or, where they begin on the
    -- symbol's first day, from the pass replaying them all. Probed in symbol order, as above
    -- (on a cold cache, Kaggle scale, the look-back of a day took a third of the time it took
    -- in the batch's hash order; the same on a warm one).
    select * from resumed_from_windows
    {%- if timescale_incremental.incremental_table_exists() %}
    union all
    select kept.*
    from (
        select * from changed_symbols
        where symbol not in (select resumed_from_windows.symbol from resumed_from_windows)
        order by symbol
    ) as changed_symbols
    inner join lateral (
        {{ trading_days_stored_before_change('changed_symbols', 252) | indent(8) }}
    ) as kept on true
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
        high,
        low,
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
