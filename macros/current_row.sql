{#- Which row is current, the one rule: of the usable rows for one key, the newest load wins,
    then the later line of its file. `newest_row_first` orders a window by it; `is_newer_row`
    compares two rows by it (an upsert keeps the stored row unless the new one is newer). -#}
{% macro newest_row_first(qualifier='') -%}
    {%- set prefix = qualifier ~ '.' if qualifier else '' -%}
    {{ prefix }}load_id desc, {{ prefix }}line_number desc
{%- endmacro %}

{% macro is_newer_row(new, stored) -%}
    ({{ new }}.load_id, {{ new }}.line_number) > ({{ stored }}.load_id, {{ stored }}.line_number)
{%- endmacro %}

{#- Which raw loads are live, the one rule: status 'loaded' (appends, merges, replaces that
    have not been superseded; superseded loads' rows wait in raw for the loader's purge). -#}
{% macro is_live_load(load_log) -%}
    {{ load_log }}.status = 'loaded'
{%- endmacro %}

{#- Which feed bars are live, the one rule: their load is live (macro is_live_load) and no
    later --replace of their symbol is live. A replace retires a symbol's earlier history; file
    loads then turn 'superseded' as a whole, but a feed load holds many symbols, so its bars
    are retired one by one, here. -#}
{% macro is_live_feed_bar(feed_bar, load_log) -%}
    {{ stock_analytics.is_live_load(load_log) }}
    and not exists (
        select from {{ source('raw', 'load_log') }} as replacing
        where replacing.source_key = 'prices/' || {{ feed_bar }}.symbol
            and replacing.load_mode = 'replace'
            and {{ stock_analytics.is_live_load('replacing') }}
            and replacing.load_id > {{ feed_bar }}.load_id
    )
{%- endmacro %}
