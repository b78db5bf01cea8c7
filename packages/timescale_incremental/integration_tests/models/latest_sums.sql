with

series_sums as (

    select * from {{ ref('series_sums') }}

),

final as (

    select distinct on (symbol)
        symbol,
        day,
        running_sum
    from series_sums
    order by symbol asc, day desc

)

select * from final
