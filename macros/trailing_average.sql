{#- The average of the last `window_rows` values of a series, from its running sum: the running
    sum now minus the running sum `window_rows` rows back, over `window_rows`. Null until the
    series has `window_rows` rows (as pandas' rolling(window_rows).mean()).
    `window_name` is a window clause of the calling query ordering the series. -#}
{% macro trailing_average(running_sum, row_number, window_rows, window_name) -%}
    {%- if window_rows is not number or window_rows < 1 -%}
        {{ exceptions.raise_compiler_error(
            "trailing_average: window_rows must be a positive integer, got " ~ window_rows) }}
    {%- endif -%}
    case
        when {{ row_number }} >= {{ window_rows }}
            then cast(
                ({{ running_sum }} - coalesce(lag({{ running_sum }}, {{ window_rows }}) over {{ window_name }}, 0))
                / {{ window_rows }}
                as double precision
            )
    end
{%- endmacro %}
