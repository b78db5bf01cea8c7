-- One row per symbol and trading day (a day with a close), numbered from 1 per symbol, with
-- the running sum of closes and the 20, 30, 50 and 200-day simple moving averages. The daily
-- marts are thin views of it and the period marts aggregate it.
-- A hypertable kept up to date from staging's change log (materialization
-- incremental_hypertable, strategy upstream_changes): for each changed symbol, its rows from
-- the first changed date on are computed again, going on from the 200 trading days stored
-- before that date; appended days cost one look-back, a corrected history the whole symbol.
-- A moving average is then one subtraction of running sums, exact (numeric) at any length.
-- The unique index runs (symbol, trade_date desc): one symbol's range, and the latest day of
-- every symbol (a SkipScan on the community edition), are index scans.
{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='upstream_changes',
        changes_of='stg_market_data__daily_prices',
        time_column='trade_date',
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

    -- The stored trading days just before each change: numbers and sums go on from them.
    {%- if timescale_incremental.incremental_table_exists() %}
    select kept.*
    from changed_symbols
    left join lateral (
        select
            stored_days.symbol,
            stored_days.trade_date,
            stored_days.trading_day_number,
            stored_days.running_close_sum
        from {{ this }} as stored_days
        where
            stored_days.symbol = changed_symbols.symbol
            and stored_days.trade_date < changed_symbols.from_date
        order by stored_days.trade_date desc
        -- the longest moving average's window
        limit 200
    ) as kept on true
    where kept.symbol is not null
    {%- else %}
    select
        symbol,
        trade_date,
        0 as trading_day_number,
        cast(0 as numeric) as running_close_sum
    from changed_trading_days
    where false
    {%- endif %}

),

last_kept_day as (

    select distinct on (symbol)
        symbol,
        trading_day_number,
        running_close_sum
    from kept_trading_days
    order by symbol asc, trade_date desc

),

numbered as (

    select
        changed_trading_days.*,
        coalesce(last_kept_day.trading_day_number, 0)
        + row_number() over by_symbol as trading_day_number,
        coalesce(last_kept_day.running_close_sum, 0)
        + sum(cast(changed_trading_days.close as numeric)) over by_symbol as running_close_sum
    from changed_trading_days
    left join last_kept_day
        on changed_trading_days.symbol = last_kept_day.symbol
    window by_symbol as (
        partition by changed_trading_days.symbol
        order by changed_trading_days.trade_date
        rows unbounded preceding
    )

),

day_sequence as (

    select
        *,
        true as is_changed
    from numbered
    union all
    select
        symbol,
        trade_date,
        null as open,
        null as high,
        null as low,
        null as close,  -- noqa: RF04
        null as adj_close,
        null as volume,
        null as load_id,
        trading_day_number,
        running_close_sum,
        false as is_changed
    from kept_trading_days

),

moving_averages as (

    select
        *,
        {{ trailing_average('running_close_sum', 'trading_day_number', 20, 'by_symbol') }} as sma_20,
        {{ trailing_average('running_close_sum', 'trading_day_number', 30, 'by_symbol') }} as sma_30,
        {{ trailing_average('running_close_sum', 'trading_day_number', 50, 'by_symbol') }} as sma_50,
        {{ trailing_average('running_close_sum', 'trading_day_number', 200, 'by_symbol') }} as sma_200
    from day_sequence
    window by_symbol as (partition by symbol order by trade_date)

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
        sma_20,
        sma_30,
        sma_50,
        sma_200
    from moving_averages
    where is_changed

)

select * from final
