{{
    config(
        materialized='incremental_hypertable',
        apply_strategy='upstream_changes',
        changes_of='series_rows',
        time_column='day',
        indexes=[{'columns': ['symbol', 'day desc'], 'unique': true}],
        compress_segmentby='symbol',
        compress_orderby='day desc',
        compress_after='1 day'
    )
}}

with

changed_symbols as (

    select * from {{ timescale_incremental.apply_batch() }}

),

series_rows as (

    select * from {{ ref('series_rows') }}

),

changed_rows as (

    select series_rows.*
    from series_rows
    inner join changed_symbols on series_rows.symbol = changed_symbols.symbol
    where series_rows.day >= coalesce(changed_symbols.from_date, '-infinity')

),

kept_rows as (

    -- the two stored days before each change: the 3-day average goes on from them
    {%- if timescale_incremental.incremental_table_exists() %}
    select kept.*
    from changed_symbols
    cross join lateral (
        select
            stored.symbol,
            stored.day,
            stored.price,
            stored.day_number,
            stored.running_sum
        from {{ this }} as stored
        where stored.symbol = changed_symbols.symbol and stored.day < changed_symbols.from_date
        order by stored.day desc
        limit 2
    ) as kept
    {%- else %}
    select
        symbol,
        day,
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
    order by symbol asc, day desc

),

numbered as (

    select
        changed_rows.symbol,
        changed_rows.day,
        changed_rows.price,
        coalesce(last_kept.day_number, 0) + row_number() over by_symbol as day_number,
        coalesce(last_kept.running_sum, 0) + sum(changed_rows.price) over by_symbol as running_sum,
        true as is_changed
    from changed_rows
    left join last_kept on changed_rows.symbol = last_kept.symbol
    window by_symbol as (partition by changed_rows.symbol order by changed_rows.day rows unbounded preceding)

),

day_sequence as (

    select * from numbered
    union all
    select
        symbol,
        day,
        price,
        day_number,
        running_sum,
        false as is_changed
    from kept_rows

),

final as (

    select
        symbol,
        day,
        price,
        day_number,
        running_sum,
        case when day_number >= 3 then avg(price) over (
            partition by symbol order by day rows between 2 preceding and current row
        ) end as avg_3
    from day_sequence

)

select
    symbol,
    day,
    price,
    day_number,
    running_sum,
    avg_3
from final
where (symbol, day) in (select numbered.symbol, numbered.day from numbered)
