{#- The sessions inside each symbol's listed life (its first to its last row) on which it has
    no row: symbol, missing_session, life_start, life_end. Shared by the no_missing_sessions
    test and int_daily_prices__missing_sessions (which the dbt unit tests exercise). `prices`
    holds one row per symbol and date (staging's unique key). -#}
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

numbered_sessions as materialized (

    select
        {{ session_column }} as session_date,
        row_number() over (order by {{ session_column }}) as session_number
    from {{ sessions }}

),

lives as (

    -- one pass over the rows: each life's bounds, and how many of its rows are on a session
    select
        dated_rows.symbol,
        min(dated_rows.trade_date) as life_start,
        max(dated_rows.trade_date) as life_end,
        count(numbered_sessions.session_date) as rows_on_sessions
    from dated_rows
    left join numbered_sessions
        on dated_rows.trade_date = numbered_sessions.session_date
    group by dated_rows.symbol

),

session_bounds as (

    -- the first and last session of each life (index probes of the calendar)
    select
        lives.*,
        first_session.session_date as first_session,
        last_session.session_date as last_session
    from lives
    left join lateral (
        select sessions.{{ session_column }} as session_date
        from {{ sessions }} as sessions
        where sessions.{{ session_column }} >= lives.life_start
        order by sessions.{{ session_column }}
        limit 1
    ) as first_session on true
    left join lateral (
        select sessions.{{ session_column }} as session_date
        from {{ sessions }} as sessions
        where sessions.{{ session_column }} <= lives.life_end
        order by sessions.{{ session_column }} desc
        limit 1
    ) as last_session on true

),

-- A life with a row on each of its sessions misses none: only the others are looked at
-- session by session (on a first build of real data, a few symbols of thousands).
-- Materialized: the planner, expecting many short lives, would otherwise expand every life
-- into its sessions first and drop the full ones last.
short_lives as materialized (

    select session_bounds.*
    from session_bounds
    inner join numbered_sessions as first_number
        on session_bounds.first_session = first_number.session_date
    inner join numbered_sessions as last_number
        on session_bounds.last_session = last_number.session_date
    where session_bounds.rows_on_sessions < last_number.session_number - first_number.session_number + 1

),

expected as (

    select
        short_lives.symbol,
        sessions.{{ session_column }} as missing_session,
        short_lives.life_start,
        short_lives.life_end
    from short_lives
    inner join {{ sessions }} as sessions
        on sessions.{{ session_column }} between short_lives.life_start and short_lives.life_end

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
