{#- The average of the last `window_rows` values of a series, from its running sum: the running
    sum now minus the running sum `window_rows` rows back, over `window_rows`. Null unless the
    window holds `window_rows` values (`running_count`: how many values so far; a missing value
    in the window gives null, as pandas' rolling(window_rows).mean()).
    `window_name` is a window clause of the calling query ordering the series. -#}
{% macro trailing_average(running_sum, running_count, window_rows, window_name) -%}
    {%- if window_rows is not number or window_rows < 1 -%}
        {{ exceptions.raise_compiler_error(
            "trailing_average: window_rows must be a positive integer, got " ~ window_rows) }}
    {%- endif -%}
    case
        when {{ running_count }} - coalesce(lag({{ running_count }}, {{ window_rows }}) over {{ window_name }}, 0) = {{ window_rows }}
            then cast(
                ({{ running_sum }} - coalesce(lag({{ running_sum }}, {{ window_rows }}) over {{ window_name }}, 0))
                / {{ window_rows }}
                as double precision
            )
    end
{%- endmacro %}
