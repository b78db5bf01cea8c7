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
