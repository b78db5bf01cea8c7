{#- The text forms and the range the parse macros accept, in one place.
    `plain_double` up to `plain_max_length` characters: digits, an optional fraction, no
    exponent. At 30 characters such a number is below 1e30 and, if nonzero, at least 1e-28, so
    the cast cannot overflow or underflow: it is cast directly, the cheap path almost every row
    takes. (The length check and an unbounded regex cost a third of a regex with counted
    repeats such as [0-9]{1,15} in PostgreSQL's engine: measured in docs/data_quality.md.)
    `plain_bigint` up to 18 characters fits a bigint the same way. `decimal`: any decimal
    number with an exponent of up to three digits, read as numeric after a length check
    (`max_length`); numeric reads it exactly (its exponent limit is 1000) and cannot overflow
    at that length, so it is range-checked against float8's and bigint's limits before the
    cast. `any_exponent`: a number whose exponent is too long for that, to word the reason.
    `min_abs`, `max_abs`: every number here is a price or a share count, and each must be 0 or
    between 1e-20 and 1e15 in size (macro number_in_range): far beyond any real price or day's
    volume either way, and what the tests and marts can compute with (a double holds 1e-300,
    but a close of 1e-300 makes adj_close / close overflow, and a period's avg() keeps a
    running sum of squares that overflows from about 1e154 and raises; a year's total volume
    must fit a bigint).
    `clean_*`: the check a clean row passes to skip all of the above (macro clean_price_row):
    each text as stored matches its pattern, a price has at most 14 digits before a '.' (15
    without one) and at most 20 after it, a volume at most 15 digits, and the date is a real
    day other than 29 February. Then the plain casts cannot fail and every value is in range:
    below 1e14 (so its double is at most 1e14; 15 digits and a fraction could round up to
    1e15, out of range), and a nonzero one at least 1e-20, whose double is then at least the
    double of 1e-20. Cheap means few regexes: PostgreSQL's costs about 25 ns a character and
    much more with counted repeats, so the bounds are lengths and the day a list. -#}
{% macro number_formats() -%}
    {{ return({
        'clean_date': '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$',
        'clean_invalid_days': ['02-29', '02-30', '02-31', '04-31', '06-31', '09-31', '11-31'],
        'clean_price': '^[0-9]+([.][0-9]*)?$',
        'clean_volume': '^[0-9]+$',
        'clean_integer_digits': 14,
        'clean_fraction_digits': 20,
        'plain_double': '^[+-]?[0-9]+([.][0-9]*)?$',
        'plain_max_length': 30,
        'plain_bigint': '^[+-]?[0-9]+([.]0*)?$',
        'plain_bigint_max_length': 18,
        'decimal': '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?0*[0-9]{1,3})?$',
        'any_exponent': '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)[eE][+-]?[0-9]+$',
        'max_length': 1000,
        'min_abs': '1e-20',
        'max_abs': '1e15',
        'double_max': '1.7976931348623157e308',
        'double_min_normal': '2.2250738585072014e-308',
        'bigint_max': '9223372036854775807',
    }) }}
{%- endmacro %}
