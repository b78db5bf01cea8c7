"""The extension price_series (price_series/README.md): its contract as the trading days model
relies on it. Its values against TA-Lib and numpy are tests/test_indicators.py's; here, that a
pass resumed from stored days equals one pass from the first day, and that bad calls stop with a
clear error. The extension does not depend on the TimescaleDB edition: one pass."""

from __future__ import annotations

import psycopg2
import pytest

from devtools.databases import Database

pytestmark = pytest.mark.one_pass

WINDOW = "over (partition by symbol order by trade_date rows unbounded preceding)"
RESUME_COLUMNS = (
    "ema_12, ema_26, ema_50, ema_200, macd_fast_ema, macd, macd_signal, rsi_average_gain, "
    "rsi_average_loss, atr_14, rsi_adjusted_average_gain, rsi_adjusted_average_loss"
)
# A random walk of 700 days with gaps that matter: a day without high and low (ATR carried), a
# day without adj_close (no return, windows held null), a 2:1 drop in the close.
SERIES = """
    create temp table days as
    select
        'X' as symbol,
        date '2000-01-01' + n as trade_date,
        case when n = 400 then null else close + 1 + (n % 5) * 0.1 end as high,
        case when n = 400 then null else close - 1 - (n % 3) * 0.1 end as low,
        close,
        case when n = 450 then null else close * 0.97 end as adj_close
    from (
        select n, 100 + 10 * sin(n / 17.0) + 5 * cos(n / 3.0) + n * 0.05
            - case when n >= 600 then 50 else 0 end as close
        from generate_series(1, 700) as n
    ) as walk
"""


@pytest.fixture
def series_db(fresh_db: Database) -> Database:
    fresh_db.query("create extension if not exists price_series")
    return fresh_db


def _full_pass(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute(
            "create temp table full_pass as select trade_date, (price_series.trading_days("
            f"null, close, high, low, adj_close, null) {WINDOW}).* from days"
        )
        cur.execute("select * from full_pass order by trade_date")
        names = [c.name for c in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


# the last stored day alone, its resume state followed by its windows: the last 252 closes and
# adj_closes up to it, oldest first
STORED_DAY_WITH_WINDOWS = f"""
    select days.*, stored.trading_day_number as kept_day_number,
           array[{", ".join("stored." + c.strip() for c in RESUME_COLUMNS.split(","))}]
           || (select array_agg(window_day.close order by window_day.trade_date)
               from days as window_day
               where window_day.trade_date <= days.trade_date
                 and window_day.trade_date > days.trade_date - 252)
           || (select array_agg(window_day.adj_close order by window_day.trade_date)
               from days as window_day
               where window_day.trade_date <= days.trade_date
                 and window_day.trade_date > days.trade_date - 252)
           as resume_state
    from days join full_pass as stored using (trade_date)
    where days.trade_date = date '2000-01-01' + %(first)s - 1
"""
# the 252 stored days before the change, each with its stored state
STORED_DAYS = f"""
    select days.*, stored.trading_day_number as kept_day_number,
           array[{", ".join("stored." + c.strip() for c in RESUME_COLUMNS.split(","))}] as resume_state
    from days join full_pass as stored using (trade_date)
    where days.trade_date < date '2000-01-01' + %(first)s
      and days.trade_date >= date '2000-01-01' + %(first)s - 252
"""


# every stored day from the symbol's first, without a resume state: the pass replays them
STORED_FROM_THE_FIRST_DAY = """
    select days.*, stored.trading_day_number as kept_day_number, null::float8[] as resume_state
    from days join full_pass as stored using (trade_date)
    where days.trade_date < date '2000-01-01' + %(first)s
"""
STORED = {
    "252 days": STORED_DAYS,
    "the last with its windows": STORED_DAY_WITH_WINDOWS,
    "every day from the first, replayed": STORED_FROM_THE_FIRST_DAY,
}


@pytest.mark.parametrize(
    ("stored", "first_changed_day"),
    [
        *(
            (stored, day)
            for stored in ("252 days", "the last with its windows")
            for day in (253, 401, 451, 601, 700)
        ),
        # before every indicator has started (the ATR on day 15, MACD's signal on day 34,
        # the EMA 200 on day 200), and after
        *(("every day from the first, replayed", day) for day in (2, 15, 35, 200, 253, 601)),
    ],
)
def test_a_pass_resumed_from_stored_days_equals_one_pass_from_the_first_day(
    series_db: Database, first_changed_day: int, stored: str
):
    conn = series_db.connect()
    with conn.cursor() as cur:
        cur.execute(SERIES)
    full = _full_pass(conn)
    with conn.cursor() as cur:
        # the stored days before the change, then the changed days
        cur.execute(
            f"""
            select (price_series.trading_days(kept_day_number, close, high, low, adj_close, resume_state)
                    {WINDOW}).*, trade_date, kept_day_number
            from (
                {STORED[stored]}
                union all
                select days.*, null, null from days where days.trade_date >= date '2000-01-01' + %(first)s
            ) as sequence
            """,
            {"first": first_changed_day},
        )
        names = [c.name for c in cur.description]
        resumed = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    conn.close()
    changed = [row for row in resumed if row["kept_day_number"] is None]
    assert len(changed) == 700 - first_changed_day + 1
    assert all(row["trading_day_number"] is None for row in resumed if row["kept_day_number"] is not None)
    for row in changed:
        expected = full[row["trade_date"]]
        for name, value in expected.items():
            if name == "trade_date":
                continue
            if value is None:
                assert row[name] is None, (row["trade_date"], name)
            else:
                assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-12), (row["trade_date"], name)


def test_missing_inputs_hold_what_they_must_and_no_more(series_db: Database):
    """docs/indicators.md: a day without high and low carries the ATR; a day without adj_close
    has no return, nor has the day after, and every window holding them is null until it has
    passed; the close's own windows never notice."""
    conn = series_db.connect()
    with conn.cursor() as cur:
        cur.execute(SERIES)
    by_number = {row["trading_day_number"]: row for row in _full_pass(conn).values()}
    conn.close()
    assert by_number[400]["atr_14"] == by_number[399]["atr_14"]
    assert by_number[401]["atr_14"] not in (None, by_number[400]["atr_14"])
    assert by_number[450]["return_log"] is None and by_number[451]["return_log"] is None
    held = [False, True, True, False]
    assert [by_number[n]["volatility_20"] is None for n in (449, 450, 470, 471)] == held
    assert [by_number[n]["sma_adjusted_50"] is None for n in (449, 450, 499, 500)] == held
    assert all(by_number[n]["sma_50"] is not None for n in range(449, 501))
    assert by_number[451]["rsi_adjusted_14"] == pytest.approx(by_number[449]["rsi_adjusted_14"])


@pytest.mark.parametrize(
    ("arguments", "rows", "message"),
    [
        # a trading day has a close
        (
            "null, close, null, null, null, null",
            "(date '2000-01-03', null::bigint, null::float8)",
            "needs a close",
        ),
        # changed days go on from the state of the last stored day, which must be given
        (
            "kept, close, null, null, null, null",
            "(date '2000-01-03', 300::bigint, 1.0::float8), (date '2000-01-04', null, 2.0)",
            "follows a stored day without its resume_state",
        ),
        (
            "kept, close, null, null, null, array[1, 2]::float8[]",
            "(date '2000-01-03', 300::bigint, 1.0::float8)",
            "resume_state has 2 values, not 12",
        ),
        # stored days replayed from the first go on by one
        (
            "kept, close, null, null, null, null",
            "(date '2000-01-03', 1::bigint, 1.0::float8), (date '2000-01-04', 3, 2.0)",
            "stored day 3 follows stored day 1, replayed from day 1",
        ),
        # windows that end on another close than the stored day's are another day's
        (
            "kept, close, null, null, null, array_fill(1.0::float8, array[12 + 504])",
            "(date '2000-01-03', 300::bigint, 2.0::float8)",
            "windows end on the close 1, the stored day's is 2",
        ),
        (
            "kept, close, null, null, null, array_fill(1.0::float8, array[12 + 251]) || null::float8"
            " || array_fill(1.0::float8, array[252])",
            "(date '2000-01-03', 300::bigint, 1.0::float8)",
            "windows lack a close",
        ),
    ],
)
def test_bad_calls_stop_with_a_clear_error(series_db: Database, arguments: str, rows: str, message: str):
    with pytest.raises(psycopg2.Error, match=message):
        series_db.query(
            f"select price_series.trading_days({arguments}) {WINDOW} "
            f"from (values {rows}) as days(trade_date, kept, close), (values ('X')) as symbols(symbol)"
        )


def test_the_transformer_creates_the_extension_and_the_reader_cannot(fresh_db: Database):
    """Trusted: CREATE on the database (the transformer's) is enough; the reader has none."""
    reader = fresh_db.connect("reader")
    with (
        pytest.raises(psycopg2.Error, match=r"permission denied|read-only transaction"),
        reader.cursor() as cur,
    ):
        cur.execute("create extension price_series")
    reader.close()
    transformer = fresh_db.connect("transformer")
    with transformer.cursor() as cur:
        cur.execute("create extension price_series")
        cur.execute("select extowner::regrole::text from pg_extension where extname = 'price_series'")
        assert cur.fetchone()[0] == "transformer"
    transformer.close()


def test_a_database_with_the_first_version_updates_to_the_one_the_model_needs(fresh_db: Database):
    """A warehouse whose extension was created at 1.0 is updated by its owner, the transformer
    (as dbt's on-run-start does): 1.1 is the library that carries the windows and replays."""
    transformer = fresh_db.connect("transformer")
    transformer.autocommit = True
    with transformer.cursor() as cur:
        cur.execute("create extension price_series version '1.0'")
        cur.execute("alter extension price_series update to '1.1'")
        cur.execute("select extversion from pg_extension where extname = 'price_series'")
        assert cur.fetchone()[0] == "1.1"
    transformer.close()
