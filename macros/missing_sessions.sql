{#- The sessions inside each symbol's listed life (its first to its last row) on which it has
    no row: symbol, missing_session, life_start, life_end. Shared by the no_missing_sessions
    test and int_daily_prices__missing_sessions (which the dbt unit tests exercise). -#}
{% macro missing_sessions(prices, sessions, symbol_column='symbol', date_column='trade_date',
                          session_column='session_date') %}
with

lives as (

    select
        {{ symbol_column }} as symbol,
        min({{ date_column }}) as life_start,
        max({{ date_column }}) as life_end
    from {{ prices }}
    group by {{ symbol_column }}

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

missing as (

    select expected.*
    from expected
    where not exists (
        select 1 from {{ prices }} as present
        where present.{{ symbol_column }} = expected.symbol
          and present.{{ date_column }} = expected.missing_session
    )

)

select * from missing
{% endmacro %}
