{#- Fails for each trading session, between a symbol's first and last row (its listed life),
    on which the symbol has no row. Weekends and holidays are not sessions, so never flagged;
    nor is anything before listing or after the last row. Logic: macro missing_sessions. -#}
{% test no_missing_sessions(model, sessions, symbol_column='symbol', date_column='trade_date',
                            session_column='session_date') %}
{{ stock_analytics.missing_sessions(model, sessions, symbol_column, date_column, session_column) }}
{% endtest %}
