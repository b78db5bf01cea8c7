-- Raw price rows that cannot be typed (bad date, a price that is not a finite number, a
-- fractional volume), with the reason and the file and line they came from.

with

parsed_prices as (

    select * from {{ ref('base_market_data__daily_prices') }}

),

load_log as (

    select * from {{ source('raw', 'load_log') }}

),

final as (

    select
        parsed_prices.symbol,
        parsed_prices.rejection_reason,
        load_log.file_path,
        parsed_prices.line_number,
        parsed_prices.load_id,
        parsed_prices.date_text,
        parsed_prices.open_text,
        parsed_prices.high_text,
        parsed_prices.low_text,
        parsed_prices.close_text,
        parsed_prices.adj_close_text,
        parsed_prices.volume_text
    from parsed_prices
    inner join load_log
        on parsed_prices.load_id = load_log.load_id
    where parsed_prices.rejection_reason is not null

)

select * from final
