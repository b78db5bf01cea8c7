{#- Whether a community-license feature ('compression', 'continuous_aggregates') can be used on
    this server. When it cannot, logs one line saying what was skipped and why, and returns
    false, so that models fall back to their plain form. -#}
{% macro timescaledb_feature_enabled(feature, requested_by) -%}
    {%- set license = timescale_incremental.timescaledb_license() -%}
    {%- if license == 'timescale' -%}
        {{ return(true) }}
    {%- endif -%}
    {%- do log(
        "TimescaleDB " ~ feature ~ " skipped for " ~ requested_by ~ ": the server's license is '"
        ~ (license or 'none: extension not installed') ~ "', it needs 'timescale' (community edition, e.g. the "
        ~ "timescaledb-ha image). Building the plain version instead.", info=true
    ) -%}
    {{ return(false) }}
{%- endmacro %}
