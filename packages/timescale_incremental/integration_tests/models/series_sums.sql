{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='upstream_changes',
        changes_of='series_rows',
        time_column='price_date',
        indexes=[{'columns': ['symbol', 'price_date desc'], 'unique': true}],
        compress_segmentby='symbol',
        compress_orderby='price_date desc',
        compress_after='1 day',
        carried_windows={'columns': ['price', 'day_number'], 'length': 2}
    )
}}

with

changed_symbols as (

    select * from {{ source('tsi_batches', 'series_sums__batch') }}

),

series_rows as (

    select * from {{ ref('series_rows') }}

),

changed_rows as (

    select series_rows.*
    from series_rows
    inner join changed_symbols on series_rows.symbol = changed_symbols.symbol
    where series_rows.price_date >= coalesce(changed_symbols.from_date, '-infinity')

),

kept_rows as (

    -- the two stored day_count before each change: the 3-price_date average goes on from them
    {%- if timescale_incremental.incremental_table_exists() %}
    select kept.*
    from changed_symbols
    cross join
        lateral (
            select
                stored_rows.symbol,
                stored_rows.price_date,
                stored_rows.price,
                stored_rows.day_number,
                stored_rows.running_sum
            from {{ this }} as stored_rows
            where stored_rows.symbol = changed_symbols.symbol and stored_rows.price_date < changed_symbols.from_date
            order by stored_rows.price_date desc
            limit 2
        ) as kept
    {%- else %}
    select
        symbol,
        price_date,
        price,
        0 as day_number,
        cast(0 as double precision) as running_sum
    from changed_rows
    where false
    {%- endif %}

),

last_kept as (

    select distinct on (symbol)
        symbol,
        day_number,
        running_sum
    from kept_rows
    order by symbol asc, price_date desc

),

numbered as (

    select
        changed_rows.symbol,
        changed_rows.price_date,
        changed_rows.price,
        coalesce(last_kept.day_number, 0) + row_number() over by_symbol as day_number,
        coalesce(last_kept.running_sum, 0) + sum(changed_rows.price) over by_symbol as running_sum,
        true as is_changed
    from changed_rows
    left join last_kept on changed_rows.symbol = last_kept.symbol
    window by_symbol as (partition by changed_rows.symbol order by changed_rows.price_date rows unbounded preceding)

),

day_sequence as (

    select * from numbered
    union all
    select
        symbol,
        price_date,
        price,
        day_number,
        running_sum,
        false as is_changed
    from kept_rows

),

final as (

    select
        symbol,
        price_date,
        price,
        day_number,
        running_sum,
        case when day_number >= 3 then avg(price) over (
                    partition by symbol order by price_date rows between 2 preceding and current row
                )
        end as avg_3
    from day_sequence

)

select
    symbol,
    price_date,
    price,
    day_number,
    running_sum,
    avg_3
from final
where (symbol, price_date) in (
        select
            numbered.symbol,
            numbered.price_date
        from numbered
    )
