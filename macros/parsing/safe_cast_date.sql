{#- `column` (text) as a date when it is a real calendar date written YYYY-MM-DD (ISO, as
    Yahoo writes it) or M/D/YYYY (as spreadsheets re-save it), years 1000 to 9999; else null.
    Never raises. The patterns admit months 1-12 and days 1-31 only, so a day up to 28 casts
    at once (the cheap path for almost every row); days 29-31 are checked against the length
    of their month first. Nested CASEs because SQL's AND does not promise to short-circuit. -#}
{% macro safe_cast_date(column) -%}
    {%- set formats = [
        {'pattern': '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$',
         'year': 'substr(' ~ column ~ ', 1, 4)', 'month': 'substr(' ~ column ~ ', 6, 2)',
         'day': 'substr(' ~ column ~ ', 9, 2)', 'to_date': 'cast(' ~ column ~ ' as date)'},
        {'pattern': '^(0?[1-9]|1[0-2])/(0?[1-9]|[12][0-9]|3[01])/[1-9][0-9]{3}$',
         'year': "split_part(" ~ column ~ ", '/', 3)", 'month': "split_part(" ~ column ~ ", '/', 1)",
         'day': "split_part(" ~ column ~ ", '/', 2)", 'to_date': "to_date(" ~ column ~ ", 'MM/DD/YYYY')"},
    ] -%}
    case
    {%- for f in formats %}
        when {{ column }} ~ '{{ f.pattern }}' then
            case
                when cast({{ f.day }} as integer) <= 28 then {{ f.to_date }}
                when cast({{ f.day }} as integer) <= extract(day from
                        make_date(cast({{ f.year }} as integer), cast({{ f.month }} as integer), 1)
                        + interval '1 month - 1 day')
                    then {{ f.to_date }}
            end
    {%- endfor %}
    end
{%- endmacro %}
