{#- The live feed's role (var live_feed_role) may run an incremental step; nobody else but the
    owner (the project's default privileges already revoke EXECUTE from PUBLIC; this holds on
    any server). -#}
{% macro grant_to_live_feed(routine, kind='function') %}
    {%- set caller = var('live_feed_role', 'streamer') -%}
    revoke all on {{ kind }} {{ routine }} from public;
    do $grant$
    begin
        if exists (select from pg_roles where rolname = {{ dbt.string_literal(caller) }}) then
            grant execute on {{ kind }} {{ routine }} to {{ adapter.quote(caller) }};
        end if;
    end
    $grant$;
{% endmacro %}
