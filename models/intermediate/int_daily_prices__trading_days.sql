-- One row per symbol and trading day (a day with a close), numbered from 1 per symbol: the
-- running sum of closes, the 20, 30, 50 and 200-day simple moving averages and the indicators
-- (docs/indicators.md). The daily marts are thin views of it and the period marts aggregate it.
-- A hypertable kept up to date from the change log of staging (materialization
-- incremental_hypertable, strategy upstream_changes): for each changed symbol, its rows from
-- the first changed date on are computed again, going on from the 252 trading days stored
-- before that date (the longest window) and from the state of the recursive indicators on the
-- last of them (resume_when: every indicator has started there; otherwise the whole symbol is
-- computed again). Appended days cost one look-back, a corrected history the symbol from the
-- correction on.
-- A moving average is one subtraction of running sums, and a standard deviation comes from
-- sums of numeric over its window: exact at any length, where floats would cancel.
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

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

changed_trading_days as (

    -- A row without a close (an empty holiday row some files carry) is not a trading day.
    select
        daily_prices.symbol,
        daily_prices.trade_date,
        daily_prices.open,
        daily_prices.high,
        daily_prices.low,
        daily_prices.close,
        daily_prices.adj_close,
        daily_prices.volume,
        daily_prices.load_id
    from daily_prices
    inner join changed_symbols
        on daily_prices.symbol = changed_symbols.symbol
    where
        daily_prices.trade_date >= coalesce(changed_symbols.from_date, '-infinity')
        -- the same bound for all symbols at once: chunks before every change are skipped
        and daily_prices.trade_date >= (
            select coalesce(min(coalesce(earliest.from_date, '-infinity')), 'infinity')
            from changed_symbols as earliest
        )
        and daily_prices.close is not null

),

kept_trading_days as (

    -- The stored trading days just before each change: numbers, running sums and windows go on
    -- from them, the recursive indicators from the state on the last of them.
    {%- if timescale_incremental.incremental_table_exists() %}
    select kept.*
    from changed_symbols
    left join lateral (
        select
            stored_days.symbol,
            stored_days.trade_date,
            stored_days.close,
            stored_days.adj_close,
            stored_days.trading_day_number,
            stored_days.running_close_sum,
            stored_days.running_close_square_sum,
            stored_days.running_return_count,
            stored_days.running_return_sum,
            stored_days.running_return_square_sum,
            stored_days.running_adj_close_count,
            stored_days.running_adj_close_sum,
            {{ price_indicators_resume_state('stored_days') }} as resume_state
        from {{ this }} as stored_days
        where
            stored_days.symbol = changed_symbols.symbol
            and stored_days.trade_date < changed_symbols.from_date
        order by stored_days.trade_date desc
        -- the longest window (high_252, low_252, volatility_252)
        limit 252
    ) as kept on true
    where kept.symbol is not null
    {%- else %}
    select
        symbol,
        trade_date,
        close,
        adj_close,
        0 as trading_day_number,
        cast(0 as numeric) as running_close_sum,
        cast(0 as numeric) as running_close_square_sum,
        cast(0 as bigint) as running_return_count,
        cast(0 as numeric) as running_return_sum,
        cast(0 as numeric) as running_return_square_sum,
        cast(0 as bigint) as running_adj_close_count,
        cast(0 as numeric) as running_adj_close_sum,
        cast(null as double precision[]) as resume_state
    from changed_trading_days
    where false
    {%- endif %}

),

last_kept_day as (

    select distinct on (symbol) *
    from kept_trading_days
    order by symbol asc, trade_date desc

),

changed_returns as (

    -- Returns on the close adjusted for dividends and splits, from the trading day before (the
    -- last kept one for the first changed day); the values whose windows give a standard
    -- deviation as numeric, cast once, for exact running sums.
    select
        changed_trading_days.*,
        case
            when row_number() over by_symbol = 1 then last_kept_day.adj_close
            else lag(changed_trading_days.adj_close) over by_symbol
        end as previous_adj_close,
        cast(changed_trading_days.close as numeric) as close_exact,
        cast(changed_trading_days.adj_close as numeric) as adj_close_exact
    from changed_trading_days
    left join last_kept_day
        on changed_trading_days.symbol = last_kept_day.symbol
    window by_symbol as (partition by changed_trading_days.symbol order by changed_trading_days.trade_date)

),

changed_values as (

    select
        *,
        case
            when adj_close > 0 and previous_adj_close > 0 then adj_close / previous_adj_close - 1
        end as return_simple,
        case
            when adj_close > 0 and previous_adj_close > 0 then ln(adj_close / previous_adj_close)
        end as return_log,
        cast(
            case when adj_close > 0 and previous_adj_close > 0 then ln(adj_close / previous_adj_close) end
            as numeric
        ) as return_log_exact
    from changed_returns

),

numbered as (

    select
        changed_values.*,
        coalesce(last_kept_day.trading_day_number, 0)
        + row_number() over by_symbol as trading_day_number,
        coalesce(last_kept_day.running_close_sum, 0)
        + sum(changed_values.close_exact) over by_symbol as running_close_sum,
        coalesce(last_kept_day.running_close_square_sum, 0)
        + sum(changed_values.close_exact * changed_values.close_exact) over by_symbol
            as running_close_square_sum,
        coalesce(last_kept_day.running_return_count, 0)
        + count(changed_values.return_log) over by_symbol as running_return_count,
        coalesce(last_kept_day.running_return_sum, 0)
        + coalesce(sum(changed_values.return_log_exact) over by_symbol, 0) as running_return_sum,
        coalesce(last_kept_day.running_return_square_sum, 0)
        + coalesce(sum(changed_values.return_log_exact * changed_values.return_log_exact) over by_symbol, 0)
            as running_return_square_sum,
        coalesce(last_kept_day.running_adj_close_count, 0)
        + count(changed_values.adj_close_exact) over by_symbol as running_adj_close_count,
        coalesce(last_kept_day.running_adj_close_sum, 0)
        + coalesce(sum(changed_values.adj_close_exact) over by_symbol, 0) as running_adj_close_sum,
        last_kept_day.resume_state
    from changed_values
    left join last_kept_day
        on changed_values.symbol = last_kept_day.symbol
    window by_symbol as (
        partition by changed_values.symbol
        order by changed_values.trade_date
        rows unbounded preceding
    )

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
        return_simple,
        return_log,
        trading_day_number,
        running_close_sum,
        running_close_square_sum,
        running_return_count,
        running_return_sum,
        running_return_square_sum,
        running_adj_close_count,
        running_adj_close_sum,
        resume_state,
        true as is_changed
    from numbered
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
        null as return_simple,
        null as return_log,
        trading_day_number,
        running_close_sum,
        running_close_square_sum,
        running_return_count,
        running_return_sum,
        running_return_square_sum,
        running_adj_close_count,
        running_adj_close_sum,
        null as resume_state,
        false as is_changed
    from kept_trading_days

),

moving_windows as (

    select
        *,
        -- the EMA seeds (TA-Lib: the SMA of the first n closes; MACD's fast EMA starts on day 26)
        case
            when trading_day_number in (12, 26)
                then {{ trailing_average('running_close_sum', 'trading_day_number', 12, 'by_symbol') }}
        end as sma_12,
        case
            when trading_day_number = 26
                then {{ trailing_average('running_close_sum', 'trading_day_number', 26, 'by_symbol') }}
        end as sma_26,
        {{ trailing_average('running_close_sum', 'trading_day_number', 20, 'by_symbol') }} as sma_20,
        {{ trailing_average('running_close_sum', 'trading_day_number', 30, 'by_symbol') }} as sma_30,
        {{ trailing_average('running_close_sum', 'trading_day_number', 50, 'by_symbol') }} as sma_50,
        {{ trailing_average('running_close_sum', 'trading_day_number', 200, 'by_symbol') }} as sma_200,
        -- the screener's crosses, on a split-consistent series (null while an adj_close in the
        -- window is missing)
        {{ trailing_average('running_adj_close_sum', 'running_adj_close_count', 50, 'by_symbol') }}
            as sma_adjusted_50,
        {{ trailing_average('running_adj_close_sum', 'running_adj_close_count', 200, 'by_symbol') }}
            as sma_adjusted_200,
        {{ trailing_variance(
            'running_close_sum', 'running_close_square_sum', 'trading_day_number', 20, 'by_symbol', sample=false
        ) }} as close_variance_20,
        -- annualised volatility: the sample standard deviation of the daily log returns (null
        -- while a return in the window is missing) times sqrt(252)
        sqrt({{ trailing_variance(
            'running_return_sum', 'running_return_square_sum', 'running_return_count', 20, 'by_symbol', sample=true
        ) }}) * sqrt(252) as volatility_20,
        sqrt({{ trailing_variance(
            'running_return_sum', 'running_return_square_sum', 'running_return_count', 252, 'by_symbol', sample=true
        ) }}) * sqrt(252) as volatility_252,
        -- The 252-day extremes in O(1) a day (van Herk / Gil-Werman): days fall in blocks of 252;
        -- a window is the end of one block (its extreme from that day on) and the start of the
        -- next (its extreme up to this day). Both parts lie within the 252 kept days.
        max(close) over block_so_far as block_high_so_far,
        min(close) over block_so_far as block_low_so_far,
        max(close) over block_from_here as block_high_from_here,
        min(close) over block_from_here as block_low_from_here
    from day_sequence
    window
        by_symbol as (partition by symbol order by trade_date),
        block_so_far as (
            partition by symbol, (trading_day_number - 1) / 252
            order by trade_date
            rows unbounded preceding
        ),
        block_from_here as (
            partition by symbol, (trading_day_number - 1) / 252
            order by trade_date desc
            rows unbounded preceding
        )

),

windows_of_windows as (

    select
        *,
        case
            when trading_day_number >= 252
                then greatest(block_high_so_far, lag(block_high_from_here, 251) over by_symbol)
        end as high_252,
        case
            when trading_day_number >= 252
                then least(block_low_so_far, lag(block_low_from_here, 251) over by_symbol)
        end as low_252
    from moving_windows
    window by_symbol as (partition by symbol order by trade_date)

),

recursive_indicators as (

    -- EMA, MACD, RSI and ATR: one aggregate carries their state from day to day (macros/
    -- indicators/price_indicators.sql), from the stored state before the first changed day.
    select
        *,
        {{ price_indicators_schema() }}.price_indicators(
            close, high, low, adj_close, sma_12, sma_26, sma_50, sma_200, resume_state
        ) over (
            partition by symbol order by trade_date rows unbounded preceding
        ) as indicator_state
    from windows_of_windows
    where is_changed

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
        trading_day_number,
        running_close_sum,
        running_close_square_sum,
        running_return_count,
        running_return_sum,
        running_return_square_sum,
        running_adj_close_count,
        running_adj_close_sum,
        sma_20,
        sma_30,
        sma_50,
        sma_200,
        sma_adjusted_50,
        sma_adjusted_200,
        {{ price_indicator('indicator_state', 'ema_12') }} as ema_12,
        {{ price_indicator('indicator_state', 'ema_26') }} as ema_26,
        {{ price_indicator('indicator_state', 'ema_50') }} as ema_50,
        {{ price_indicator('indicator_state', 'ema_200') }} as ema_200,
        {{ price_indicator('indicator_state', 'macd_fast_ema') }} as macd_fast_ema,
        {{ price_indicator('indicator_state', 'macd') }} as macd,
        {{ price_indicator('indicator_state', 'macd_signal') }} as macd_signal,
        {{ price_indicator('indicator_state', 'macd') }}
        - {{ price_indicator('indicator_state', 'macd_signal') }} as macd_histogram,
        {{ price_indicator('indicator_state', 'rsi_average_gain') }} as rsi_average_gain,
        {{ price_indicator('indicator_state', 'rsi_average_loss') }} as rsi_average_loss,
        {{ price_indicator('indicator_state', 'rsi_14') }} as rsi_14,
        {{ price_indicator('indicator_state', 'atr_14') }} as atr_14,
        {{ price_indicator('indicator_state', 'rsi_adjusted_average_gain') }} as rsi_adjusted_average_gain,
        {{ price_indicator('indicator_state', 'rsi_adjusted_average_loss') }} as rsi_adjusted_average_loss,
        {{ price_indicator('indicator_state', 'rsi_adjusted_14') }} as rsi_adjusted_14,
        -- TA-Lib: a variance below its zero (1e-8) is a standard deviation of 0
        sma_20 + 2 * case when close_variance_20 >= 1e-8 then sqrt(close_variance_20) else 0 end as bollinger_upper,
        sma_20 - 2 * case when close_variance_20 >= 1e-8 then sqrt(close_variance_20) else 0 end as bollinger_lower,
        return_simple,
        return_log,
        volatility_20,
        volatility_252,
        high_252,
        low_252
    from recursive_indicators

)

select * from final
