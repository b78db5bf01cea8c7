-- The rows int_daily_prices__trading_days rewrote in this build go on from the rows stored
-- before them: each trading day's number is the day before's + 1 (1 on the symbol's first
-- day), and each moving average is null exactly until the symbol has that many days. An
-- incremental step that numbered from the wrong stored day shows here. Reads the changed rows and the
-- stored day before each changed range (macro changed_rows); --vars '{full_tests: true}'
-- reads every row. Fails with the rows that break the series and why.
{%- set windows = [20, 30, 50, 200] %}
{%- set trading_days = ref('int_daily_prices__trading_days') %}

with

tested_days as (

    {%- if var('full_tests', false) %}
    select * from {{ trading_days }}
    {%- else %}
    {{ timescale_incremental.changed_rows(trading_days, rows_before=1) }}
    {%- endif %}

),

with_previous as (

    select
        symbol,
        trade_date,
        close,
        trading_day_number,
        {%- for window_rows in windows %}
        sma_{{ window_rows }},
        {%- endfor %}
        lag(trading_day_number) over by_symbol as previous_number
    from tested_days
    window by_symbol as (partition by symbol order by trade_date)

),

checked as (

    select
        *,
        concat_ws(
            '; ',
            case
                when previous_number is not null and trading_day_number <> previous_number + 1
                    then 'number is not the day before''s + 1'
            end,
            {%- for window_rows in windows %}
            case
                when (sma_{{ window_rows }} is null) <> (trading_day_number < {{ window_rows }})
                    then 'sma_{{ window_rows }} null on the wrong days'
            end{{ ',' if not loop.last }}
            {%- endfor %}
        ) as broken_because
    from with_previous

),

first_days_not_numbered_1 as (

    -- A range's first row has no day before it in the range: it must be numbered 1 exactly
    -- when the symbol has no earlier day.
    select checked.*
    from checked
    where
        checked.previous_number is null
        and checked.trading_day_number <> 1
        and not exists (
            select from {{ trading_days }} as earlier
            where
                earlier.symbol = checked.symbol
                and earlier.trade_date < checked.trade_date
        )

),

final as (

    select
        symbol,
        trade_date,
        trading_day_number,
        broken_because
    from checked
    where broken_because <> ''
    union all
    select
        symbol,
        trade_date,
        trading_day_number,
        'first day of the symbol numbered ' || trading_day_number as broken_because
    from first_days_not_numbered_1

)

select * from final
