-- Every raw price row, typed, with the reason it cannot be used (null when it can).
-- The one place raw text becomes typed values: staging keeps the good rows, the rejected-rows
-- model the others, so no row leaves the pipeline without a trace.
-- make lint's SQL linter cannot lay out the generated reason list or the LATERAL subqueries
-- kept apart by `offset 0` (an optimization fence on purpose): those rules are off here.
-- sqlfluff:exclude_rules:ST06,LT02,ST05,AM09
{%- set price_columns = ['open', 'high', 'low', 'close', 'adj_close'] %}
{%- set text_columns = ['date'] + price_columns + ['volume'] %}
{%- set raw_prices = [] %}
{%- for column in price_columns %}{% do raw_prices.append('live_rows.raw_' ~ column) %}{% endfor %}

with

daily_prices as (

    select * from {{ source('raw', 'daily_prices') }}

),

feed_bars as (

    select * from {{ source('raw', 'feed_bars') }}

),

load_log as (

    select * from {{ source('raw', 'load_log') }}

),

live_rows as (

    select
        daily_prices.load_id,
        daily_prices.line_number,
        load_log.symbol,
        load_log.asset_type as folder_asset_type,
        load_log.finished_at as loaded_at,
        {%- for column in text_columns %}
        daily_prices.{{ column }} as raw_{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from daily_prices
    inner join load_log
        on daily_prices.load_id = load_log.load_id
    -- Live loads only (appends and merges; per date the newest wins in staging): superseded
    -- loads' rows wait in raw for the loader's purge.
    where {{ is_live_load('load_log') }}

    union all

    -- The live feed's bars (stream/consume.py): one load per micro-batch, many symbols, at most
    -- one bar per (symbol, date) in a load, so the revision stands in for the line number.
    select
        feed_bars.load_id,
        feed_bars.revision as line_number,
        feed_bars.symbol,
        cast(null as text) as folder_asset_type,
        load_log.finished_at as loaded_at,
        {%- for column in text_columns %}
        feed_bars.{{ column }} as raw_{{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from feed_bars
    inner join load_log
        on feed_bars.load_id = load_log.load_id
    where {{ is_live_feed_bar('feed_bars', 'load_log') }}

),

-- One check per row (clean_price_row) picks the path: a clean row's texts are cast as they
-- are; any other row's go through the parse macros, which never raise. The check runs once
-- per row in a LATERAL subquery that `offset 0` keeps apart (merged into this query, each
-- use of is_clean below would run it again). No materialized CTE: nothing is spooled, and
-- a filter on load_id or symbol still reaches raw's indexes.
checked as (

    select
        live_rows.*,
        row_check.is_clean
    from live_rows
    cross join lateral (
        select {{ clean_price_row('live_rows.raw_date', raw_prices, 'live_rows.raw_volume') }} as is_clean
        offset 0  -- noqa: PRS
    ) as row_check

),

-- Parsing never raises (any text gives a value or null); a parsed number must then be a
-- plausible price or volume (number_in_range) for the tests and marts to add it up. A clean
-- row's texts need no trim and its values are both by construction: cast as they are. Again
-- a LATERAL subquery kept apart by `offset 0`: the values are computed once per row, and the
-- range checks and rejection reasons below read them (merged, each use would copy the parse
-- expressions into the query, thousands of times over, and JIT compilation alone would take
-- minutes).
typed as (

    select
        checked.load_id,
        checked.line_number,
        checked.symbol,
        checked.folder_asset_type,
        checked.loaded_at,
        checked.is_clean,
        parsed.*
    from checked
    cross join lateral (
        select
            texts.*,
            case
                when checked.is_clean then cast(texts.date_text as date)
                else {{ safe_cast_date('texts.date_text') }}
            end as trade_date,
            {%- for column in price_columns %}
            case
                when checked.is_clean then cast(texts.{{ column }}_text as double precision)
                else {{ safe_cast_double('texts.' ~ column ~ '_text') }}
            end as {{ column }}_parsed,
            {%- endfor %}
            case
                when checked.is_clean then cast(texts.volume_text as bigint)
                else {{ safe_cast_bigint('texts.volume_text') }}
            end as volume_parsed
        from (
            select
                {%- for column in text_columns %}
                case
                    when checked.is_clean then checked.raw_{{ column }}
                    else nullif(trim(checked.raw_{{ column }}), '')
                end as {{ column }}_text{{ ',' if not loop.last }}
                {%- endfor %}
        ) as texts
        offset 0
    ) as parsed

),

ranged as (

    select
        *,
        {%- for column in price_columns %}
        case
            when is_clean then {{ column }}_parsed
            else {{ number_in_range(column ~ '_parsed') }}
        end as {{ column }},
        {%- endfor %}
        case
            when is_clean then volume_parsed
            else {{ number_in_range('volume_parsed', 'bigint') }}
        end as volume
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
        {%- for column in text_columns %}
        {{ column }}_text,
        {%- endfor %}
        case when not is_clean then nullif(concat_ws('; ',
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
        ), '') end as rejection_reason
    from ranged

)

select * from final
