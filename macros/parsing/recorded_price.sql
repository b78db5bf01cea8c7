{#- An open, high or low of 0 beside a positive close is Yahoo's "not recorded" (whole eras of
    1962-1992 opens; a handful of highs and lows), never a price: null, so a period candle's
    open is the first recorded one and an average high or low is of recorded values. Measured
    on the real files: every one of 26,843 zero opens has a positive close. A 0 close stays
    as it is, a finding (stg_prices_positive). -#}
{% macro recorded_price(price, close) -%}
    case when {{ price }} = 0 and {{ close }} > 0 then null else {{ price }} end
{%- endmacro %}
