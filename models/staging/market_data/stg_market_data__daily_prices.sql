-- One row per (symbol, trade_date): the typed, de-duplicated daily bars. A hypertable on
-- trade_date; the unique (symbol, trade_date) index serves per-symbol time-range queries.
{{
    config(
        materialized='hypertable',
        time_column='trade_date',
        indexes=[{'columns': ['symbol', 'trade_date'], 'unique': true}],
        compress_segmentby='symbol',
        compress_orderby='trade_date desc'
    )
}}
{#- The loader ANALYZEs the load log after every run: without statistics (autovacuum skips
    tables under 50 rows) the planner expects one current load and picks nested loops that take
    minutes on the sample. (Only the owner, the loader, may ANALYZE it.) -#}

with

parsed_prices as (

    select * from {{ ref('base_market_data__daily_prices') }}

),

symbols as (

    select * from {{ ref('stg_market_data__symbols') }}

),

usable_prices as (

    select * from parsed_prices
    where rejection_reason is null

),

ranked as (

    -- The same date twice: the latest load wins, then the later line of the file.
    select
        *,
        row_number() over (
            partition by symbol, trade_date
            order by load_id desc, line_number desc
        ) as recency_rank,
        count(*) over (partition by symbol, trade_date) as source_row_count
    from usable_prices

),

final as (

    select
        ranked.symbol,
        ranked.trade_date,
        {{ resolve_asset_type('symbols.asset_type', 'ranked.folder_asset_type') }} as asset_type,
        ranked.open,
        ranked.high,
        ranked.low,
        ranked.close,
        ranked.adj_close,
        ranked.volume,
        ranked.source_row_count,
        ranked.load_id,
        ranked.line_number,
        ranked.loaded_at
    from ranked
    left join symbols
        on ranked.symbol = symbols.symbol
    where ranked.recency_rank = 1

)

select * from final
