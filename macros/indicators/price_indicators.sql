{#- The recursive indicators (EMA, MACD, RSI, ATR; each macro documented in macros/_macros.yml;
    docs/indicators.md) as one aggregate over a symbol's trading days in date order, used as a
    window function: its state after a day is every value the next day needs, so a symbol goes
    on from any stored day in O(1). The state's layout is written once, here: the function
    fills it, price_indicators_resume_state() rebuilds it from a stored row and
    price_indicator() reads a value from it. -#}

{% macro price_indicator_slot(name) -%}
    {%- set slots = [
        'rows_seen', 'ema_12', 'ema_26', 'ema_50', 'ema_200',
        'macd_fast_ema', 'macd_seed_sum', 'macd', 'macd_signal',
        'previous_close', 'rsi_average_gain', 'rsi_average_loss', 'rsi_14',
        'true_ranges_seen', 'true_range_seed_sum', 'atr_14',
        'adjusted_changes_seen', 'rsi_adjusted_average_gain', 'rsi_adjusted_average_loss', 'rsi_adjusted_14',
        'previous_adj_close'
    ] -%}
    {%- if name not in slots -%}
        {{ exceptions.raise_compiler_error(
            "price_indicator_slot: no slot " ~ name ~ "; slots: " ~ slots | join(', ')) }}
    {%- endif -%}
    {{- slots.index(name) + 1 -}}
{%- endmacro %}


{#- One value of the state, by name. -#}
{% macro price_indicator(state, name) -%}
    {{ state }}[{{ price_indicator_slot(name) }}]
{%- endmacro %}


{#- The state after a stored day (a row of the model that meets its resume_when): every seed
    is over there, so the seed sums are no longer read. -#}
{% macro price_indicators_resume_state(row) -%}
    array[
        cast({{ row }}.trading_day_number as double precision),
        {{ row }}.ema_12, {{ row }}.ema_26, {{ row }}.ema_50, {{ row }}.ema_200,
        {{ row }}.macd_fast_ema, 0, {{ row }}.macd, {{ row }}.macd_signal,
        {{ row }}.close, {{ row }}.rsi_average_gain, {{ row }}.rsi_average_loss, {{ row }}.rsi_14,
        15, 0, {{ row }}.atr_14,
        15, {{ row }}.rsi_adjusted_average_gain, {{ row }}.rsi_adjusted_average_loss, {{ row }}.rsi_adjusted_14,
        {{ row }}.adj_close
    ]
{%- endmacro %}


{#- The aggregate `<schema>.price_indicators(close, high, low, adj_close, sma_12, sma_26, sma_50,
    sma_200, resume_state)`, created or replaced (on-run-start). Floating point in TA-Lib's order
    of operations; TA-Lib's constants (its TA_IS_ZERO threshold of 1e-8 for RSI). -#}
{% macro create_price_indicators(schema) -%}
create schema if not exists {{ schema }};

create or replace function {{ schema }}.price_indicators_step(
    state double precision[],
    close double precision,
    high double precision,
    low double precision,
    adj_close double precision,
    sma_12 double precision,
    sma_26 double precision,
    sma_50 double precision,
    sma_200 double precision,
    resume_state double precision[]
)
returns double precision[]
language plpgsql
immutable
parallel safe
as $step$
-- Few statements, each one expression: a PL/pgSQL statement costs more than its arithmetic.
declare
    -- the first day of a symbol starts from nothing; the first changed day from its resume state
    s double precision[] := coalesce(
        state, resume_state, '{0,null,null,null,null,null,0,null,null,null,0,0,null,0,0,null,0,0,0,null,null}'
    );
    -- this day's index in the symbol's series, from 0 (TA-Lib's `today`)
    i double precision := s[{{ price_indicator_slot('rows_seen') }}];
    previous_close double precision := s[{{ price_indicator_slot('previous_close') }}];
    ema_26 double precision;
    macd_fast_ema double precision;
    macd_line double precision;
    macd_seed_sum double precision;
    macd_signal double precision;
    change double precision;
    average_gain double precision;
    average_loss double precision;
    true_range double precision;
    true_ranges_seen double precision;
    true_range_seed_sum double precision;
    atr double precision;
    adjusted_change double precision;
    adjusted_changes_seen double precision;
    adjusted_gain double precision;
    adjusted_loss double precision;
begin
    -- EMA n (TA-Lib): the SMA of the first n closes on day n - 1, then (close - ema) * k + ema
    -- with k = 2 / (n + 1); the SMAs come in exact (running sums of numeric).
    ema_26 := case
        when i = 25 then sma_26
        when i > 25 then (close - s[{{ price_indicator_slot('ema_26') }}]) * (2::float8 / 27) + s[{{ price_indicator_slot('ema_26') }}]
    end;

    -- MACD (12, 26, 9), TA-Lib: the fast EMA starts where the slow one does (day 25, from the
    -- SMA of closes 14..25); the signal is the EMA 9 of the line from day 25 (the average of its
    -- first 9 values on day 33), so line, signal and histogram start on day 33.
    macd_fast_ema := case
        when i = 25 then sma_12
        when i > 25 then (close - s[{{ price_indicator_slot('macd_fast_ema') }}]) * (2::float8 / 13) + s[{{ price_indicator_slot('macd_fast_ema') }}]
    end;
    macd_line := macd_fast_ema - ema_26;
    macd_seed_sum := case
        when i <= 33 then s[{{ price_indicator_slot('macd_seed_sum') }}] + coalesce(macd_line, 0)
        else s[{{ price_indicator_slot('macd_seed_sum') }}]
    end;
    macd_signal := case
        when i = 33 then macd_seed_sum / 9
        when i > 33 then (macd_line - s[{{ price_indicator_slot('macd_signal') }}]) * (2::float8 / 10) + s[{{ price_indicator_slot('macd_signal') }}]
    end;

    -- RSI 14, Wilder (TA-Lib): the averages of the first 14 gains and losses, then average * 13
    -- + today's, over 14 (the sums while i < 14); 0 when both are below TA-Lib's zero (1e-8).
    change := close - previous_close;
    average_gain := case
        when i = 0 then 0
        when i < 14 then s[{{ price_indicator_slot('rsi_average_gain') }}] + greatest(change, 0)
        when i = 14 then (s[{{ price_indicator_slot('rsi_average_gain') }}] + greatest(change, 0)) / 14
        else (s[{{ price_indicator_slot('rsi_average_gain') }}] * 13 + greatest(change, 0)) / 14
    end;
    average_loss := case
        when i = 0 then 0
        when i < 14 then s[{{ price_indicator_slot('rsi_average_loss') }}] - least(change, 0)
        when i = 14 then (s[{{ price_indicator_slot('rsi_average_loss') }}] - least(change, 0)) / 14
        else (s[{{ price_indicator_slot('rsi_average_loss') }}] * 13 - least(change, 0)) / 14
    end;

    -- ATR 14, Wilder (TA-Lib): the average of the first 14 true ranges, then average * 13 +
    -- today's, over 14. A day without high or low has no true range: the average is carried
    -- unchanged and the next day's range starts from this day's close.
    true_range := case
        when i > 0 and high is not null and low is not null
            then greatest(high - low, abs(previous_close - high), abs(previous_close - low))
    end;
    true_ranges_seen := s[{{ price_indicator_slot('true_ranges_seen') }}] + case when true_range is null then 0 else 1 end;
    true_range_seed_sum := s[{{ price_indicator_slot('true_range_seed_sum') }}] + case when true_ranges_seen <= 14 then coalesce(true_range, 0) else 0 end;
    atr := case
        when true_range is null then s[{{ price_indicator_slot('atr_14') }}]
        when true_ranges_seen = 14 then true_range_seed_sum / 14
        when true_ranges_seen > 14 then (s[{{ price_indicator_slot('atr_14') }}] * 13 + true_range) / 14
    end;

    -- The same RSI on adj_close, for the screener's flags: a split the close is not adjusted
    -- for is no loss there. A day or its day before without adj_close gives no change: the
    -- averages are carried.
    adjusted_change := adj_close - s[{{ price_indicator_slot('previous_adj_close') }}];
    adjusted_changes_seen := s[{{ price_indicator_slot('adjusted_changes_seen') }}]
        + case when adjusted_change is null then 0 else 1 end;
    adjusted_gain := s[{{ price_indicator_slot('rsi_adjusted_average_gain') }}];
    adjusted_loss := s[{{ price_indicator_slot('rsi_adjusted_average_loss') }}];
    if adjusted_change is not null then
        if adjusted_changes_seen > 14 then
            adjusted_gain := adjusted_gain * 13;
            adjusted_loss := adjusted_loss * 13;
        end if;
        adjusted_gain := adjusted_gain + greatest(adjusted_change, 0);
        adjusted_loss := adjusted_loss - least(adjusted_change, 0);
        if adjusted_changes_seen >= 14 then
            adjusted_gain := adjusted_gain / 14;
            adjusted_loss := adjusted_loss / 14;
        end if;
    end if;

    return array[
        i + 1,
        case
            when i = 11 then sma_12
            when i > 11 then (close - s[{{ price_indicator_slot('ema_12') }}]) * (2::float8 / 13) + s[{{ price_indicator_slot('ema_12') }}]
        end,
        ema_26,
        case
            when i = 49 then sma_50
            when i > 49 then (close - s[{{ price_indicator_slot('ema_50') }}]) * (2::float8 / 51) + s[{{ price_indicator_slot('ema_50') }}]
        end,
        case
            when i = 199 then sma_200
            when i > 199 then (close - s[{{ price_indicator_slot('ema_200') }}]) * (2::float8 / 201) + s[{{ price_indicator_slot('ema_200') }}]
        end,
        macd_fast_ema,
        macd_seed_sum,
        case when i >= 33 then macd_line end,
        macd_signal,
        close,
        average_gain,
        average_loss,
        case
            when i < 14 then null
            when -1e-8 < average_gain + average_loss and average_gain + average_loss < 1e-8 then 0
            else 100 * (average_gain / (average_gain + average_loss))
        end,
        true_ranges_seen,
        true_range_seed_sum,
        atr,
        adjusted_changes_seen,
        adjusted_gain,
        adjusted_loss,
        case
            when adjusted_changes_seen < 14 then null
            when -1e-8 < adjusted_gain + adjusted_loss and adjusted_gain + adjusted_loss < 1e-8 then 0
            else 100 * (adjusted_gain / (adjusted_gain + adjusted_loss))
        end,
        adj_close
    ];
end
$step$;

create or replace aggregate {{ schema }}.price_indicators(
    double precision, double precision, double precision, double precision, double precision,
    double precision, double precision, double precision, double precision[]
) (
    sfunc = {{ schema }}.price_indicators_step,
    stype = double precision[]
);
{%- endmacro %}


{#- The schema of the aggregate (on-run-start creates it there, before any model or unit test
    reads it). -#}
{% macro price_indicators_schema() -%}
    {{- generate_schema_name('intermediate', none) -}}
{%- endmacro %}
