{#- Fails for each trading session, between a symbol's first and last row (its listed life),
    on which the symbol has no row. Weekends and holidays are not sessions, so never flagged;
    nor is anything before listing or after the last row. Logic: macro missing_sessions.
    max_share, share_of, min_findings: the rate guard (macro rate_guard; a share of the
    model's rows). -#}
{% test no_missing_sessions(model, sessions, symbol_column='symbol', date_column='trade_date',
                            session_column='session_date', max_share=none, share_of='rows', min_findings=100) %}
{%- call stock_analytics.rate_guard(model, max_share, share_of, min_findings, symbol_column,
                                    finding='missing sessions') %}
{{ stock_analytics.missing_sessions(model, sessions, symbol_column, date_column, session_column) }}
{%- endcall %}
{% endtest %}
