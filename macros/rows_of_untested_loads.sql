{#- The rows of a raw table (one with a load_id) that a test has not seen pass (documented in
    macros/_macros.yml). Only ids at or above the first such load are read: the table's BRIN
    index on load_id skips the rest. -#}
{% macro rows_of_untested_loads(relation) -%}
    {%- set seen = timescale_incremental.snapshots_of_this_test() -%}
    {%- set load_log = source('raw', 'load_log') -%}
    {%- set scoped = seen.passed and not var('full_tests', false)
                     and 'writer_xid' in (adapter.get_columns_in_relation(load_log) | map(attribute='name') | list) -%}
(
    {{- timescale_incremental.tested_snapshot_comment(seen) }}
    select * from {{ relation }}
    {%- if scoped %}
    -- the first load this test's last passing run did not see, else the first id the log has
    -- not had (a row under it is a writer's bug); an empty log: every row
    where load_id >= coalesce(
        (
            select min(load_id) from {{ load_log }}
            where {{ timescale_incremental.unseen_by_last_pass(seen, 'started_at', 'writer_xid') | indent(12) }}
        ),
        (select max(load_id) + 1 from {{ load_log }}),
        -9223372036854775808
    )
    {%- endif %}
) as dbt_subquery
{%- endmacro %}
