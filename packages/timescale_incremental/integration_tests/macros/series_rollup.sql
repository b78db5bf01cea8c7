{#- The integration project's period rollups (series_weekly, series_monthly): per symbol and
    bucket of `bucket_width`, the days and their total price, as a continuous aggregate where
    the package builds one, else through the model's batch (`batch`, its source). -#}
{% macro series_rollup(bucket_width, batch) %}
{%- if timescale_incremental.builds_as_continuous_aggregate() %}
select
    symbol,
    {{ timescale_incremental.time_bucket(bucket_width, 'price_date') }} as period_start,
    count(*) as day_count,
    sum(price) as total_price
from {{ ref('series_sums') }}
group by symbol, period_start
{%- else %}

with

changed_periods as (

    select * from {{ batch }}

),

series_sums as (

    {{ timescale_incremental.changed_period_rows(ref('series_sums'), 'changed_periods', 'price_date') | indent(4) }}

),

final as (

    select
        symbol,
        {{ timescale_incremental.time_bucket(bucket_width, 'price_date') }} as period_start,
        count(*) as day_count,
        sum(price) as total_price
    from series_sums
    group by symbol, period_start

)

select * from final
{%- endif %}
{% endmacro %}
