{{
    config(
        materialized='continuous_aggregate',
        bucket_width='1 week',
        indexes=[{'columns': ['symbol', 'period_start'], 'unique': true}]
    )
}}

{%- if timescale_incremental.builds_as_continuous_aggregate() %}
select
    symbol,
    {{ timescale_incremental.time_bucket('1 week', 'price_date') }} as period_start,
    count(*) as day_count,
    sum(price) as total_price
from {{ ref('series_sums') }}
group by symbol, period_start
{%- else %}

with

changed_periods as (

    select * from {{ source('tsi_batches', 'series_weekly__batch') }}

),

series_sums as (

    {{ timescale_incremental.changed_period_rows(ref('series_sums'), 'changed_periods', 'price_date') | indent(4) }}

),

final as (

    select
        symbol,
        {{ timescale_incremental.time_bucket('1 week', 'price_date') }} as period_start,
        count(*) as day_count,
        sum(price) as total_price
    from series_sums
    group by symbol, period_start

)

select * from final
{%- endif %}
