-- Every raw price row, typed, with the reason it cannot be used (null when it can).
-- The one place raw text becomes typed values: staging keeps the good rows, the rejected-rows
-- model the others, so no row leaves the pipeline without a trace.
{%- set price_columns = ['open', 'high', 'low', 'close', 'adj_close'] %}

with

daily_prices as (

    select * from {{ source('raw', 'daily_prices') }}

),

load_log as (

    select * from {{ source('raw', 'load_log') }}

),

trimmed as (

    select
        daily_prices.load_id,
        daily_prices.line_number,
        load_log.symbol,
        load_log.asset_type as folder_asset_type,
        load_log.finished_at as loaded_at,
        nullif(trim(daily_prices.date), '') as date_text,
        {%- for column in price_columns %}
        nullif(trim(daily_prices.{{ column }}), '') as {{ column }}_text,
        {%- endfor %}
        nullif(trim(daily_prices.volume), '') as volume_text
    from daily_prices
    inner join load_log
        on daily_prices.load_id = load_log.load_id
    -- Live loads only (appends and merges; per date the newest wins in staging): superseded
    -- loads' rows wait in raw for the loader's purge.
    where load_log.status = 'loaded'

),

-- materialized: each parse runs once per row; the range checks and rejection_reason read the
-- results again. Parsing never raises (any text gives a value or null); a parsed number must
-- then be a plausible price or volume (number_in_range) for the tests and marts to add it up.
typed as materialized (

    select
        *,
        {{ safe_cast_date('date_text') }} as trade_date,
        {%- for column in price_columns %}
        {{ safe_cast_double(column ~ '_text') }} as {{ column }}_parsed,
        {%- endfor %}
        {{ safe_cast_bigint('volume_text') }} as volume_parsed
    from trimmed

),

ranged as (

    select
        *,
        {%- for column in price_columns %}
        {{ number_in_range(column ~ '_parsed') }} as {{ column }},
        {%- endfor %}
        {{ number_in_range('volume_parsed', 'bigint') }} as volume
    from typed

),

final as (

    select
        load_id,
        line_number,
        symbol,
        folder_asset_type,
        loaded_at,
        trade_date,
        {%- for column in price_columns %}
        {{ column }},
        {%- endfor %}
        volume,
        date_text,
        {%- for column in price_columns %}
        {{ column }}_text,
        {%- endfor %}
        volume_text,
        nullif(concat_ws('; ',
            case
                when date_text is null then 'missing date'
                when trade_date is null then 'unparseable date ' || {{ quoted_excerpt('date_text') }}
            end,
            {%- for column in price_columns %}
            case
                when {{ column }}_text is not null and {{ column }}_parsed is null
                    then {{ double_rejection_reason(column ~ '_text', column) }}
                when {{ column }}_parsed is not null and {{ column }} is null
                    then {{ range_rejection_reason(column ~ '_text', column) }}
            end,
            {%- endfor %}
            case
                when volume_text is not null and volume_parsed is null
                    then {{ bigint_rejection_reason('volume_text', 'volume') }}
                when volume_parsed is not null and volume is null
                    then {{ range_rejection_reason('volume_text', 'volume') }}
            end
        ), '') as rejection_reason
    from ranged

)

select * from final
