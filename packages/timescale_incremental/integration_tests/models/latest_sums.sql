with

series_sums as (

    select * from {{ ref('series_sums') }}

),

final as (

    select distinct on (symbol)
        symbol,
        price_date,
        running_sum
    from series_sums
    order by symbol asc, price_date desc

)

select * from final
