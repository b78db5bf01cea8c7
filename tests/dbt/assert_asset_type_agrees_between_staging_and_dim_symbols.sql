-- Stock or ETF is decided once (macro resolve_asset_type): every symbol with prices has one
-- asset_type in staging, and dim_symbols gives the same. Fails with the symbols where not.
-- A daily build reads the rows it changed (macro changed_rows; a recomputed symbol's are all
-- of them); --vars '{full_tests: true}' reads every row.
{%- set staged_prices = ref('stg_market_data__daily_prices') %}

with

daily_prices as (

    {%- if var('full_tests', false) %}
    select * from {{ staged_prices }}
    {%- else %}
    {{ timescale_incremental.changed_rows(staged_prices) | indent(4) }}
    {%- endif %}

),

dim_symbols as (

    select * from {{ ref('dim_symbols') }}

),

staged as (

    select
        symbol,
        min(asset_type) as staged_asset_type,
        count(distinct asset_type) as staged_asset_types
    from daily_prices
    group by symbol

),

final as (

    select
        staged.symbol,
        staged.staged_asset_type,
        staged.staged_asset_types,
        dim_symbols.asset_type as dim_asset_type
    from staged
    inner join dim_symbols
        on staged.symbol = dim_symbols.symbol
    where staged.staged_asset_types > 1
        or staged.staged_asset_type is distinct from dim_symbols.asset_type

)

select * from final
