-- One row per symbol with prices: its first day in staging. Kept apart from
-- int_daily_prices__symbol_spans because it changes only when a change reaches back to it: an
-- appended day leaves it as it is, where finding it again probes every staging chunk from
-- the oldest on (the 8,000 symbols of a daily build: seconds).
-- A hypertable kept by the package from staging's change log with resume_when true: a symbol
-- whose stored first day is before its first changed date keeps its row (the routine deletes
-- nothing and this SQL selects nothing for it); any other (new, or changed from its first day
-- or earlier) is found again by one index probe. One chunk for every first day (a row per
-- symbol): the routine's probe of each changed symbol's row then opens one chunk, not sixty.
{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='upstream_changes',
        changes_of='stg_market_data__daily_prices',
        time_column='first_trade_date',
        chunk_time_interval='36500 days',
        resume_when='true',
        indexes=[{'columns': ['symbol', 'first_trade_date'], 'unique': true}]
    )
}}

with

changed_symbols as (

    select * from {{ source('batches', 'int_daily_prices__symbol_firsts__batch') }}

),

-- Not materialized: the lateral lookup below is an index probe into the hypertable.
daily_prices as not materialized (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

final as (

    -- a changed symbol without rows left (none of its live loads had a usable row) has none
    select
        changed_symbols.symbol,
        first_row.trade_date as first_trade_date
    from changed_symbols
    cross join
        lateral (
            select daily_prices.trade_date
            from daily_prices
            where daily_prices.symbol = changed_symbols.symbol
            order by daily_prices.trade_date
            limit 1
        ) as first_row
    -- a symbol with a first changed date kept its stored row
    where changed_symbols.from_date is null

)

select * from final
