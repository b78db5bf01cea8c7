{#- Columnar compression of an incremental hypertable (community license only; elsewhere one
    log line says it was skipped). `enable_compression` sets the table's compression settings
    once and says whether compression is on; then `compress_old_chunks` compresses the chunks that are not compressed, or were partly
    decompressed by a correction, and end before now - compress_after. It runs after the
    build's commit, chunk by chunk, never inside a swap. -#}
{% macro enable_compression(relation, segment_by, order_by, compress_after) -%}
    {%- if compress_after is none -%}{{ return(false) }}{%- endif -%}
    {%- if not timescale_incremental.timescaledb_feature_enabled('compression', relation.identifier) -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set enabled = run_query(
        "select compression_enabled from timescaledb_information.hypertables
          where hypertable_schema = '" ~ relation.schema ~ "' and hypertable_name = '" ~ relation.identifier ~ "'"
    ).columns[0].values() -%}
    {%- if enabled | length > 0 and not enabled[0] -%}
        {%- call statement('enable_compression') -%}
            alter table {{ relation }} set (
                timescaledb.compress,
                timescaledb.compress_segmentby = {{ dbt.string_literal(segment_by) }},
                timescaledb.compress_orderby = {{ dbt.string_literal(order_by) }}
            )
        {%- endcall -%}
    {%- endif -%}
    {{ return(true) }}
{%- endmacro %}

{% macro compress_old_chunks(relation, compress_after) -%}
    {%- call statement('compress_old_chunks', fetch_result=True, auto_begin=True) -%}
        select count(compress_chunk(chunk, if_not_compressed => true))
        from (
            select format('%I.%I', chunks.chunk_schema, chunks.chunk_name)::regclass as chunk
            from timescaledb_information.chunks as chunks
            inner join _timescaledb_catalog.chunk as catalog_chunk
                on catalog_chunk.schema_name = chunks.chunk_schema
                and catalog_chunk.table_name = chunks.chunk_name
            where chunks.hypertable_schema = {{ dbt.string_literal(relation.schema) }}
                and chunks.hypertable_name = {{ dbt.string_literal(relation.identifier) }}
                and chunks.range_end <= now() - interval {{ dbt.string_literal(compress_after) }}
                -- not compressed, or compressed and since partly written to (status bit 8)
                and (not chunks.is_compressed or catalog_chunk.status & 8 = 8)
            order by chunks.range_start
        ) as old_chunks
    {%- endcall -%}
    {{ adapter.commit() }}
    {%- set compressed = load_result('compress_old_chunks')['table'].columns[0].values()[0] -%}
    {%- do log("TimescaleDB compression: " ~ compressed ~ " chunk(s) of " ~ relation
               ~ " compressed (older than " ~ compress_after ~ ")", info=true) -%}
    {{ return(compressed) }}
{%- endmacro %}

{#- A correction may land in a compressed chunk: TimescaleDB decompresses what the statement
    touches, but by default refuses past 100,000 rows per transaction. The apply functions lift
    that limit for their own transaction (the setting exists on both editions). -#}
{% macro allow_dml_on_compressed_chunks() -%}
    set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true)
{%- endmacro %}
