{#- The recursive state after a stored trading day, as price_series.trading_days() takes it
    (price_series/README.md lists the slots in this order). -#}
{% macro trading_days_resume_state(row) -%}
    array[
        {{ row }}.ema_12, {{ row }}.ema_26, {{ row }}.ema_50, {{ row }}.ema_200,
        {{ row }}.macd_fast_ema, {{ row }}.macd, {{ row }}.macd_signal,
        {{ row }}.rsi_average_gain, {{ row }}.rsi_average_loss, {{ row }}.atr_14,
        {{ row }}.rsi_adjusted_average_gain, {{ row }}.rsi_adjusted_average_loss
    ]
{%- endmacro %}


{#- on-run-start: the extension price_series in this database, or one line saying how to get it. -#}
{% macro create_price_series() -%}
do $price_series$
begin
    if not exists (select from pg_available_extensions where name = 'price_series') then
        raise exception 'this server lacks the price_series extension the trading days are computed with'
            using hint = 'make db-up installs it on the project cluster; on another server run, as root, bash scripts/install_price_series.sh (price_series/README.md)';
    end if;
    create extension if not exists price_series;
    -- 1.1: the windows carried in resume_state and the replay of a young listing's days, which a
    -- 1.0 library would get wrong or refuse
    if (select extversion from pg_extension where extname = 'price_series') = '1.0' then
        if not exists (
            select from pg_available_extension_versions where name = 'price_series' and version = '1.1'
        ) then
            raise exception 'this server''s price_series library is 1.0; the trading days need 1.1'
                using hint = 'make db-up installs it on the project cluster; on another server run, as root, bash scripts/install_price_series.sh (price_series/README.md)';
        end if;
        alter extension price_series update to '1.1';
    end if;
end
$price_series$;
{%- endmacro %}
