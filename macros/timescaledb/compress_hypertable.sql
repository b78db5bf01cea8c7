{#- Turn on columnar compression for a hypertable and compress its chunks whose data is older
    than `compress_after`. Needs the community license; elsewhere logs that it was skipped.
    Returns true when compression was applied. -#}
{% macro compress_hypertable(relation, segment_by, order_by, compress_after) -%}
    {%- if compress_after is none -%}{{ return(false) }}{%- endif -%}
    {%- if not stock_analytics.timescaledb_feature_enabled('compression', relation.identifier) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- call statement('compress_hypertable') -%}
        alter table {{ relation }} set (
            timescaledb.compress,
            timescaledb.compress_segmentby = {{ dbt.string_literal(segment_by) }},
            timescaledb.compress_orderby = {{ dbt.string_literal(order_by) }}
        );
        select compress_chunk(chunk, if_not_compressed => true)
          from show_chunks('{{ relation }}'::regclass,
                           older_than => (current_date - interval {{ dbt.string_literal(compress_after) }})::date) as chunk;
    {%- endcall -%}
    {%- do log("TimescaleDB compression on " ~ relation ~ " for chunks older than " ~ compress_after, info=true) -%}
    {{ return(true) }}
{%- endmacro %}
