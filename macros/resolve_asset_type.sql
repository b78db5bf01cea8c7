{#- Stock or ETF, the one rule every model uses: the symbols metadata (NASDAQ Trader's ETF
    flag) wins; the folder the file sat in (stocks/, etfs/) only fills in for a symbol the
    metadata does not list. The flag is the exchange's classification of the symbol, one
    answer for all its loads; the folder is where a file happened to be saved (a single file
    has none, two loads of a symbol may come from different folders). -#}
{% macro resolve_asset_type(metadata_asset_type, folder_asset_type) -%}
    coalesce({{ metadata_asset_type }}, {{ folder_asset_type }})
{%- endmacro %}
