-- One row per symbol from the NASDAQ Trader metadata (symbols_valid_meta.csv), typed.
{%- set exchanges = {'A': 'NYSE MKT', 'N': 'NYSE', 'P': 'NYSE ARCA', 'Q': 'NASDAQ', 'V': 'IEX', 'Z': 'BATS'} %}

with

symbols_meta as (

    select * from {{ source('raw', 'symbols_meta') }}

),

load_log as (

    select * from {{ source('raw', 'load_log') }}

),

current_symbols_meta as (

    -- Live loads only (each symbol's newest row wins below): superseded loads' rows wait in
    -- raw for the loader's purge.
    select symbols_meta.*
    from symbols_meta
    inner join load_log
        on symbols_meta.load_id = load_log.load_id
    where {{ is_live_load('load_log') }}

),

ranked as (

    select
        *,
        row_number() over (partition by trim(symbol) order by {{ newest_row_first() }}) as recency_rank
    from current_symbols_meta
    where nullif(trim(symbol), '') is not null

),

final as (

    select
        trim(symbol) as symbol,
        trim(security_name) as security_name,
        nullif(trim(listing_exchange), '') as listing_exchange_code,
        case trim(listing_exchange)
            {%- for code, name in exchanges.items() %}
            when '{{ code }}' then '{{ name }}'
            {%- endfor %}
        end as listing_exchange,
        nullif(trim(market_category), '') as market_category,
        case trim(etf) when 'Y' then 'etf' when 'N' then 'stock' end as asset_type,
        trim(etf) = 'Y' as is_etf,
        trim(nasdaq_traded) = 'Y' as is_nasdaq_traded,
        trim(test_issue) = 'Y' as is_test_issue,
        trim(next_shares) = 'Y' as is_nextshares,
        {{ safe_cast_bigint('trim(round_lot_size)') }} as round_lot_size,
        nullif(trim(financial_status), '') as financial_status,
        nullif(trim(cqs_symbol), '') as cqs_symbol,
        nullif(trim(nasdaq_symbol), '') as nasdaq_symbol,
        load_id
    from ranked
    where recency_rank = 1

)

select * from final
