{#- Wraps a finding's SQL (the caller block: a generic test's failing rows) in a rate guard, so
    a finding that real data has and the marts tolerate warns at any dataset size and errors
    only when it floods: when its share of the tested rows (share_of='rows') or symbols
    (share_of='symbols') is above `max_share` AND it has at least `min_findings` rows (a share
    of a handful of rows says nothing: one holiday row in a 5-day file is 17%). The tested rows
    are `model`: the whole model, or the rows a `where` scopes the test to (a daily build's
    new rows, macro get_where_subquery), so the share is of what was read.
    Each failing row carries the finding's share, the guard and a sentence saying both, so
    the stored failures explain an error; the count is computed once, inside the test. With
    max_share none, the finding's rows are returned as they are (a plain test). -#}
{% macro rate_guard(model, max_share=none, share_of='rows', min_findings=100, symbol_column='symbol',
                    finding='finding') %}
    {%- if max_share is none -%}
{{ caller() }}
    {%- else -%}
        {%- if max_share is not number or max_share <= 0 or max_share > 1 -%}
            {{ exceptions.raise_compiler_error(
                finding ~ " on " ~ model ~ ": max_share must be a share between 0 and 1, got " ~ max_share) }}
        {%- endif -%}
        {%- if share_of not in ['rows', 'symbols'] -%}
            {{ exceptions.raise_compiler_error(
                finding ~ " on " ~ model ~ ": share_of must be 'rows' or 'symbols', got " ~ share_of) }}
        {%- endif -%}
        {%- if min_findings is not number or min_findings < 1 -%}
            {{ exceptions.raise_compiler_error(
                finding ~ " on " ~ model ~ ": min_findings must be a positive integer, got " ~ min_findings) }}
        {%- endif -%}
        {%- set counted = 'count(*)' if share_of == 'rows' else 'count(distinct ' ~ symbol_column ~ ')' -%}
        {{ config(severity='error', warn_if='>0',
                  error_if='>= ' ~ min_findings ~ ' and max(share_of_' ~ share_of ~ ') > ' ~ max_share) }}
with

findings as (

{{ caller() }}

),

finding_count as (

    select {{ counted }} as findings from findings

),

population as (

    select {{ counted }} as population from {{ model }}

),

shares as (

    select
        finding_count.findings,
        population.population,
        cast(finding_count.findings as double precision) / nullif(population.population, 0) as share
    from finding_count
    cross join population

)

select
    findings.*,
    shares.share as share_of_{{ share_of }},
    {{ max_share }} as max_share_of_{{ share_of }},
    format('%s in %s%% of %s (%s of %s); errors above %s%% with %s or more rows',
        '{{ finding }}', round(cast(100 * shares.share as numeric), 4), '{{ share_of }}',
        to_char(shares.findings, 'FM999,999,999,990'), to_char(shares.population, 'FM999,999,999,990'),
        {{ '%g' % (max_share * 100) }}, {{ min_findings }}) as rate_guard
from findings
cross join shares
    {%- endif %}
{% endmacro %}
