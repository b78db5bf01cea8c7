-- The day each symbol traded the most shares (the earliest such day on a tie).

with

daily_prices as (

    select * from {{ ref('stg_market_data__daily_prices') }}

),

ranked as (

    select
        symbol,
        trade_date,
        volume,
        close,
        row_number() over (partition by symbol order by volume desc, trade_date asc) as volume_rank
    from daily_prices
    where volume is not null

),

final as (

    select
        symbol,
        trade_date,
        volume,
        close
    from ranked
    where volume_rank = 1

)

select * from final
order by symbol
