{#- True when a raw price row is clean: its texts, exactly as stored, are a date and five
    prices and a volume that plain casts read without error and that are in range; false for
    anything else (a missing value, a space, an exponent, a sign, a 29 February, ...), whose
    row then takes the parse macros. See number_formats for why each bound suffices. -#}
{% macro clean_price_row(date, prices, volume) -%}
    {%- set f = stock_analytics.number_formats() -%}
    coalesce(
        {{ date }} ~ '{{ f.clean_date }}'
        and substr({{ date }}, 6) not in ('{{ f.clean_invalid_days | join("', '") }}')
        {%- for price in prices %}
        and {{ price }} ~ '{{ f.clean_price }}'
        and case strpos({{ price }}, '.')
            when 0 then octet_length({{ price }}) <= {{ f.clean_integer_digits + 1 }}
            else strpos({{ price }}, '.') <= {{ f.clean_integer_digits + 1 }}
                and octet_length({{ price }}) - strpos({{ price }}, '.') <= {{ f.clean_fraction_digits }}
        end
        {%- endfor %}
        and {{ volume }} ~ '{{ f.clean_volume }}'
        and octet_length({{ volume }}) <= {{ f.clean_integer_digits + 1 }},
        false
    )
{%- endmacro %}
