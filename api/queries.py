"""Every SQL statement the API runs. User input reaches the database as bound parameters only;
the one thing chosen by a request (which period mart) is picked from a fixed mapping."""

from __future__ import annotations

from enum import StrEnum


class Period(StrEnum):
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"
    yearly = "yearly"


HEALTH = """
select count(*) as symbols, max(last_trade_date) as latest_trade_date
from marts.dim_symbols
"""

SYMBOL = """
select * from marts.dim_symbols where symbol = %(symbol)s
"""

SYMBOL_EXISTS = """
select exists (select from marts.dim_symbols where symbol = %(symbol)s) as found
"""

# Each optional filter is a fixed fragment switched off by a null parameter, so the statement
# text never depends on input and psycopg can prepare it once per connection.
SYMBOLS = """
select * from marts.dim_symbols
where (%(asset_type)s::text is null or asset_type = %(asset_type)s)
    and (%(has_prices)s::boolean is null or has_prices = %(has_prices)s)
    and (
        %(q_prefix)s::text is null
        or symbol ilike %(q_prefix)s escape '\\'
        or security_name ilike %(q_contains)s escape '\\'
    )
    and (%(after)s::text is null or symbol > %(after)s)
order by symbol
limit %(limit)s
"""

# Series: one symbol, an inclusive date range, key pagination on the date (after = the last
# date of the previous page). Rows come in the order of the staging (symbol, trade_date) index.
PRICES = """
select symbol, trade_date, open, high, low, close, adj_close, volume
from marts.fct_daily_prices
where symbol = %(symbol)s
    and trade_date >= %(start)s and trade_date <= %(end)s and trade_date > %(after)s
order by trade_date
limit %(limit)s
"""

MOVING_AVERAGES = """
select symbol, trade_date, close, sma_20, sma_30, sma_50, sma_200
from marts.fct_daily_moving_averages
where symbol = %(symbol)s
    and trade_date >= %(start)s and trade_date <= %(end)s and trade_date > %(after)s
order by trade_date
limit %(limit)s
"""

INDICATORS = """
select symbol, trade_date, ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_histogram,
    rsi_14, atr_14, bollinger_upper, bollinger_middle, bollinger_lower, return_simple, return_log,
    volatility_20, volatility_252, high_252, low_252
from marts.fct_daily_indicators
where symbol = %(symbol)s
    and trade_date >= %(start)s and trade_date <= %(end)s and trade_date > %(after)s
order by trade_date
limit %(limit)s
"""

_PERIOD_AVERAGES = """
select symbol, period_start, trading_days, avg_high, avg_low, avg_volume, avg_close,
    period_open, period_high, period_low, period_close, total_volume
from marts.{table}
where symbol = %(symbol)s
    and period_start >= %(start)s and period_start <= %(end)s and period_start > %(after)s
order by period_start
limit %(limit)s
"""

PERIOD_AVERAGES = {
    period: _PERIOD_AVERAGES.format(table=f"fct_price_averages_{period.value}") for period in Period
}


# The screener's flags, each a query parameter of the same name and a boolean column.
SCREENER_FLAGS = (
    "crossed_above_sma_50",
    "crossed_below_sma_50",
    "crossed_above_sma_200",
    "crossed_below_sma_200",
    "golden_cross",
    "death_cross",
    "rsi_above_70",
    "rsi_below_30",
)

# The query parameters each kind of list takes (anything else is refused, api.routes).
SERIES_PARAMETERS = ("start", "end", "limit", "cursor")
SCREENER_PARAMETERS = (*SCREENER_FLAGS, "limit", "cursor")

# One row per symbol; each flag filter is a fixed fragment switched off by a null parameter (as
# in SYMBOLS), so the text is built once here from the constant names above, never from input.
# `flag = true` leaves out the rows where the flag is null (not computable), as SQL does.
SCREENER = """
select symbol, trade_date, close, day_change, sma_20, sma_50, sma_200,
    ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_histogram, rsi_14, atr_14,
    bollinger_upper, bollinger_middle, bollinger_lower, volatility_20, volatility_252,
    high_252, low_252, {flags}
from marts.fct_latest_day
where {filters}
    and (%(after)s::text is null or symbol > %(after)s)
order by symbol
limit %(limit)s
""".format(
    flags=", ".join(SCREENER_FLAGS),
    filters="\n    and ".join(f"(%({f})s::boolean is null or {f} = %({f})s)" for f in SCREENER_FLAGS),
)


def like_pattern(text: str) -> str:
    """`text` for ILIKE ... ESCAPE '\\' matching itself literally: a `%` or `_` the user
    typed is a character to find, not a wildcard."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
