{#- The variance of the last `window_rows` values of a series, exact, from its running sums
    (numeric): the sums over the window are the running sums now minus `window_rows` rows
    back, then one division. Null unless the window holds
    `window_rows` values (`running_count`: how many values so far; one null value in the
    window gives null, as pandas' rolling(window_rows).var()). Sample (ddof 1) or population
    (ddof 0) variance. `window_name` is a window clause of the calling query ordering the
    series. -#}
{% macro trailing_variance(running_sum, running_square_sum, running_count, window_rows, window_name, sample) -%}
    {%- if window_rows is not number or window_rows < 2 -%}
        {{ exceptions.raise_compiler_error(
            "trailing_variance: window_rows must be an integer of at least 2, got " ~ window_rows) }}
    {%- endif -%}
    {%- set window_sum -%}
        ({{ running_sum }} - coalesce(lag({{ running_sum }}, {{ window_rows }}) over {{ window_name }}, 0))
    {%- endset -%}
    case
        when {{ running_count }} - coalesce(lag({{ running_count }}, {{ window_rows }}) over {{ window_name }}, 0) = {{ window_rows }}
            -- the exact numerator, then one division in double precision (numeric's is slow)
            then cast(
                {{ window_rows }}
                * ({{ running_square_sum }} - coalesce(lag({{ running_square_sum }}, {{ window_rows }}) over {{ window_name }}, 0))
                - {{ window_sum }} * {{ window_sum }}
                as double precision
            )
            / {{ window_rows * (window_rows - 1 if sample else window_rows) }}
    end
{%- endmacro %}
