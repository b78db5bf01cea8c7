"""Read what the report needs from the marts, and nothing else.

The connection comes from the libpq variables only (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE), so which role reads is decided by the environment: `make report` runs it as
`reader`, which may SELECT on the marts schema and nothing more.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extensions

from warehouse_connection.connect import connect as connect_to_warehouse

log = logging.getLogger(__name__)

MARTS = "marts"
PERIOD_UNITS = {"weekly": "week", "monthly": "month", "quarterly": "quarter", "yearly": "year"}
PERIODS = tuple(PERIOD_UNITS)
# Volume spikes compare a day with the 20 trading days before it: fetch this much history
# before the range so the range's first days have their average (20 sessions < 35 days).
LOOKBACK_DAYS = 45


class ReportDataError(Exception):
    """A problem the CLI reports as one line (unreachable server, unknown symbol, no grant)."""


def connect() -> psycopg2.extensions.connection:
    """A read-only session on the database the libpq variables name."""
    timeout = int(os.environ.get("PGCONNECT_TIMEOUT", "10"))
    try:
        conn = connect_to_warehouse("stock_analytics report", connect_timeout=timeout)
    except psycopg2.OperationalError as exc:
        where = (
            f"{os.environ.get('PGHOST', 'localhost')}:{os.environ.get('PGPORT', '5432')}"
            f"/{os.environ.get('PGDATABASE', '')} as {os.environ.get('PGUSER', '(default user)')}"
        )
        raise ReportDataError(f"cannot connect to the database ({where}): {one_line(exc)}") from exc
    conn.set_session(readonly=True, autocommit=True)
    return conn


def one_line(exc: BaseException) -> str:
    """A database error's message on one line (libpq's come with hints on extra lines)."""
    return re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__


def _frame(conn: psycopg2.extensions.connection, sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            columns = [c.name for c in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=columns)
    except psycopg2.errors.InsufficientPrivilege as exc:
        raise ReportDataError(f"the database role may not read the marts: {one_line(exc)}") from exc
    except psycopg2.errors.UndefinedTable as exc:
        raise ReportDataError(f"a mart is missing (run dbt build first): {one_line(exc)}") from exc
    except psycopg2.Error as exc:
        raise ReportDataError(f"query failed: {one_line(exc)}") from exc


def last_trade_date(conn: psycopg2.extensions.connection) -> date:
    """The latest trading day in the data (the default range ends there)."""
    frame = _frame(conn, f"select max(last_trade_date) as last from {MARTS}.dim_symbols")
    last = frame.at[0, "last"]
    if last is None:
        raise ReportDataError(f"{MARTS}.dim_symbols has no symbol with prices: load data and run dbt build")
    return last


def symbols(conn: psycopg2.extensions.connection, wanted: Sequence[str]) -> pd.DataFrame:
    """dim_symbols rows of the wanted symbols, in the order asked; an unknown one is an error."""
    frame = _frame(
        conn,
        f"select symbol, security_name, asset_type, listing_exchange, first_trade_date, "
        f"last_trade_date, trading_days, has_prices from {MARTS}.dim_symbols where symbol = any(%s)",
        (list(wanted),),
    )
    known = set(frame["symbol"])
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ReportDataError(f"unknown symbol{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    no_prices = frame.loc[~frame["has_prices"].astype(bool), "symbol"].tolist()
    if no_prices:
        raise ReportDataError(f"no prices loaded for: {', '.join(s for s in wanted if s in no_prices)}")
    return frame.set_index("symbol").loc[list(wanted)].reset_index()


def most_traded(conn: psycopg2.extensions.connection, count: int, start: date, end: date) -> list[str]:
    """The `count` symbols with the most shares traded between start and end (inclusive)."""
    frame = _frame(
        conn,
        f"select symbol from {MARTS}.fct_daily_prices where trade_date between %s and %s "
        "group by symbol order by sum(volume) desc nulls last, symbol limit %s",
        (start, end, count),
    )
    return frame["symbol"].tolist()


def daily_bars(conn: psycopg2.extensions.connection, symbol: str, start: date, end: date) -> pd.DataFrame:
    """Daily bars with the mart's moving averages, from LOOKBACK_DAYS before start to end.

    Indexed by trade_date (datetime64); columns open, high, low, close, adj_close, volume,
    sma_20, sma_50, sma_200.
    """
    frame = _frame(
        conn,
        f"""
        select p.trade_date, p.open, p.high, p.low, p.close, p.adj_close, p.volume,
               m.sma_20, m.sma_50, m.sma_200
        from {MARTS}.fct_daily_prices as p
        left join {MARTS}.fct_daily_moving_averages as m
          -- the symbol literal lets the view window only this symbol's rows
          on m.symbol = %s and m.trade_date = p.trade_date
        where p.symbol = %s and p.trade_date between %s and %s
        order by p.trade_date
        """,
        (symbol, symbol, start - timedelta(days=LOOKBACK_DAYS), end),
    )
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    numeric = ["open", "high", "low", "close", "adj_close", "sma_20", "sma_50", "sma_200"]
    frame[numeric] = frame[numeric].astype("float64")
    frame["volume"] = frame["volume"].astype("float64")  # float: a missing volume is NaN
    return frame.set_index("trade_date")


INDICATORS = (
    "bollinger_upper",
    "bollinger_middle",
    "bollinger_lower",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_histogram",
)


def daily_indicators(
    conn: psycopg2.extensions.connection, symbol: str, start: date, end: date
) -> pd.DataFrame:
    """The mart's Bollinger bands, RSI 14 and MACD of symbol in [start, end] (docs/indicators.md).

    Indexed by trade_date (datetime64); one float64 column per name in INDICATORS, NaN where
    the mart has null (an indicator's first days, before its window is full).
    """
    frame = _frame(
        conn,
        f"select trade_date, {', '.join(INDICATORS)} from {MARTS}.fct_daily_indicators "
        "where symbol = %s and trade_date between %s and %s order by trade_date",
        (symbol, start, end),
    )
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    frame[list(INDICATORS)] = frame[list(INDICATORS)].astype("float64")
    log.debug("indicators of %s: %d days", symbol, len(frame))
    return frame.set_index("trade_date")


def adj_closes(
    conn: psycopg2.extensions.connection, symbols: Sequence[str], start: date, end: date
) -> pd.DataFrame:
    """adj_close of each symbol in [start, end]: one column per symbol, indexed by trade_date."""
    frame = _frame(
        conn,
        f"select trade_date, symbol, adj_close from {MARTS}.fct_daily_prices "
        "where symbol = any(%s) and trade_date between %s and %s",
        (list(symbols), start, end),
    )
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    frame["adj_close"] = frame["adj_close"].astype("float64")
    wide = frame.pivot(index="trade_date", columns="symbol", values="adj_close").sort_index()
    return wide.reindex(columns=list(symbols))


def period_averages(
    conn: psycopg2.extensions.connection, symbol: str, start: date, end: date
) -> dict[str, pd.DataFrame]:
    """The period marts' rows of the periods that overlap [start, end], per period name."""
    result = {}
    for period in PERIODS:
        unit = PERIOD_UNITS[period]
        frame = _frame(
            conn,
            f"""
            select period_start, trading_days, avg_high, avg_low, avg_close, avg_volume, total_volume
            from {MARTS}.fct_price_averages_{period}
            where symbol = %s and period_start between date_trunc('{unit}', %s::date) and %s
            order by period_start
            """,
            (symbol, start, end),
        )
        frame["period_start"] = pd.to_datetime(frame["period_start"])
        for column in ("avg_high", "avg_low", "avg_close", "avg_volume"):
            frame[column] = frame[column].astype("float64")
        result[period] = frame
    log.debug("period averages of %s: %s", symbol, {k: len(v) for k, v in result.items()})
    return result
