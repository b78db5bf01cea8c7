{#- Routines run by a role other than their owner (documented in macros/_macros.yml). -#}
{% macro grant_to_caller(object, kind='function', privilege='execute') %}
    {%- set caller = var('live_feed_role', 'streamer') -%}
    revoke all on {{ kind }} {{ object }} from public;
    do $grant$
    begin
        if exists (select from pg_roles where rolname = {{ dbt.string_literal(caller) }}) then
            grant {{ privilege }} on {{ kind }} {{ object }} to {{ adapter.quote(caller) }};
        end if;
    end
    $grant$;
{% endmacro %}
