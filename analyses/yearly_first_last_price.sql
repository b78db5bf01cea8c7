-- The first and last close of each calendar year per symbol, with TimescaleDB's first() and
-- last() (the close at the earliest and the latest trade date of the year), and the change.

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

yearly as (

    select
        symbol,
        {{ timescale_incremental.time_bucket('1 year', 'trade_date') }} as year_start,
        first(close, trade_date) as first_close,
        last(close, trade_date) as last_close
    from daily_prices
    where close is not null
    group by symbol, year_start

),

final as (

    select
        symbol,
        cast(extract(year from year_start) as integer) as year,
        first_close,
        last_close,
        100 * (last_close - first_close) / nullif(first_close, 0) as change_percent
    from yearly

)

select * from final
order by symbol, year
