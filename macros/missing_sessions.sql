{#- The sessions inside each symbol's listed life (its first to its last row) on which it has
    no row: symbol, missing_session, life_start, life_end. Shared by the no_missing_sessions
    test and int_daily_prices__missing_sessions (which the dbt unit tests exercise). -#}
{% macro missing_sessions(prices, sessions, symbol_column='symbol', date_column='trade_date',
                          session_column='session_date') %}
with

dated_rows as not materialized (

    -- `prices` may be a subquery (a test's `where`), which takes no second alias; inlined,
    -- so the lookup below still uses the relation's (symbol, trade_date) index
    select
        {{ symbol_column }} as symbol,
        {{ date_column }} as trade_date
    from {{ prices }}

),

lives as (

    select
        symbol,
        min(trade_date) as life_start,
        max(trade_date) as life_end
    from dated_rows
    group by symbol

),

expected as (

    select
        lives.symbol,
        sessions.{{ session_column }} as missing_session,
        lives.life_start,
        lives.life_end
    from lives
    inner join {{ sessions }} as sessions
        on sessions.{{ session_column }} between lives.life_start and lives.life_end

),

-- Materialized: planned for all its rows even under a limit (dbt show adds one), which would
-- otherwise make the lookup a nested loop over `prices` once per expected session.
missing as materialized (

    select expected.*
    from expected
    where not exists (
        select 1 from dated_rows as present
        where
            present.symbol = expected.symbol
            and present.trade_date = expected.missing_session
    )

)

select * from missing
{% endmacro %}
