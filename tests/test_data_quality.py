"""Defect injection: clean data passes every dbt test; each planted defect is caught by exactly
the test meant for it, with the planted row among that test's stored failures.

Each defect goes into a symbol of its own, so one build checks them all: a test's failing rows
must name exactly the symbols planted for it, and no other test may name them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import PROJECT_DIR, Database, create_database, drop_database

SESSIONS = [line.strip() for line in (PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv").open()][1:]
LIFE = [d for d in SESSIONS if "2019-01-01" <= d <= "2019-12-31"]  # 252 sessions
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
META_HEADER = (
    "Nasdaq Traded,Symbol,Security Name,Listing Exchange,Market Category,ETF,Round Lot Size,"
    "Test Issue,Financial Status,CQS Symbol,NASDAQ Symbol,NextShares\n"
)
ADJ_RATIO = 0.9


@dataclass
class Bar:
    date: str
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    adj_close: float | None
    volume: int | None

    def line(self) -> str:
        values = [self.open, self.high, self.low, self.close, self.adj_close, self.volume]
        return ",".join([self.date, *("" if v is None else repr(v) for v in values)]) + "\n"


def clean_series(seed: int) -> list[Bar]:
    """A calm random walk on every 2019 session: consistent OHLC, constant adj ratio, no repeats."""
    rng = random.Random(seed)
    price, bars = 50.0 + seed, []
    for date in LIFE:
        open_ = price * (1 + rng.uniform(-0.004, 0.004))
        close = open_ * (1 + rng.uniform(-0.02, 0.02))
        high, low = max(open_, close) * 1.004, min(open_, close) * 0.996
        bars.append(Bar(date, open_, high, low, close, close * ADJ_RATIO, rng.randint(10_000, 90_000)))
        price = close
    return bars


def scale(bar: Bar, factor: float) -> None:
    for name in ("open", "high", "low", "close", "adj_close"):
        setattr(bar, name, getattr(bar, name) * factor)


# What is planted where: symbol -> (the test that must catch it, the planted date).
DEFECTS = {
    "DUPL": ("raw_prices_no_duplicate_dates", LIFE[100]),
    "HILO": ("stg_prices_ohlc_consistent", LIFE[101]),
    "NEGP": ("stg_prices_positive", LIFE[102]),
    "NEGV": ("stg_prices_volume_not_negative", LIFE[103]),
    "GAPS": ("stg_prices_no_missing_sessions", LIFE[104]),
    "STAL": ("stg_prices_stale_close", LIFE[105]),
    "JUMP": ("stg_prices_unexplained_jumps", LIFE[106]),
    "ADJS": ("stg_prices_adjustment_steps", LIFE[107]),
    "UNKN": ("stg_prices_symbol_in_symbols", None),
    "EMPT": ("stg_prices_no_empty_rows", "2019-07-04"),  # Independence Day: no session
}


def plant(symbol: str, bars: list[Bar]) -> list[Bar]:
    at = next((i for i, b in enumerate(bars) if b.date == DEFECTS[symbol][1]), None)
    if symbol == "DUPL":
        bars.insert(at + 1, Bar(**vars(bars[at])))  # the same line twice
    elif symbol == "HILO":
        bars[at].high, bars[at].low = bars[at].low, bars[at].high
    elif symbol == "NEGP":
        scale(bars[at], -1.0)
    elif symbol == "NEGV":
        bars[at].volume = -bars[at].volume
    elif symbol == "GAPS":
        del bars[at]
    elif symbol == "STAL":
        for bar in bars[at : at + 6]:  # six identical closes in a row
            bar.open = bar.high = bar.low = bar.close = bars[at].close
            bar.adj_close = bars[at].close * ADJ_RATIO
    elif symbol == "JUMP":
        scale(bars[at], 5.0)  # everything five times, the adj ratio unchanged: unexplained
    elif symbol == "ADJS":
        for bar in bars[at:]:
            bar.adj_close *= 0.9  # a dividend (or unadjusted split) from here on
    elif symbol == "EMPT":
        after = next(i for i, b in enumerate(bars) if b.date > "2019-07-04")
        bars.insert(after, Bar("2019-07-04", None, None, None, None, None, None))
    return bars


def write_dataset(folder: Path, symbols: list[str], unknown: set[str]) -> None:
    (folder / "stocks").mkdir(parents=True)
    meta = [META_HEADER]
    for seed, symbol in enumerate(symbols):
        bars = clean_series(seed)
        if symbol in DEFECTS:
            bars = plant(symbol, bars)
        (folder / "stocks" / f"{symbol}.csv").write_text(HEADER + "".join(b.line() for b in bars))
        if symbol not in unknown:
            meta.append(f"Y,{symbol},{symbol} Test Inc.,N, ,N,100.0,N,,{symbol},{symbol},N\n")
    (folder / "symbols_valid_meta.csv").write_text("".join(meta))


@pytest.fixture(scope="module")
def injected_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    folder = tmp_path_factory.mktemp("injected")
    write_dataset(folder / "data", ["CLEA", "CLEB", *DEFECTS], unknown={"UNKN"})
    db = create_database(folder / "db")
    load = db.run_loader(folder / "data")
    assert load.returncode == 0, load.stderr
    db.dbt("build")  # exits 1: the negative volume is an error, as it should be
    yield db
    drop_database(db)


def statuses(db: Database) -> dict[str, str]:
    return {
        r["unique_id"].split(".")[2]: r["status"]
        for r in db.dbt_results()["results"]
        if r["unique_id"].startswith("test.")
    }


def failing_rows(db: Database, test_name: str) -> list[dict]:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'select * from audit."{test_name}"')
            columns = [c.name for c in cur.description]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()


def symbols_named(row: dict) -> set[str]:
    return {str(v) for v in row.values()} & {*DEFECTS, "CLEA", "CLEB"}


def test_clean_data_passes_every_test(tmp_path):
    write_dataset(tmp_path / "data", ["CLEA", "CLEB", "CLEC"], unknown=set())
    db = create_database(tmp_path / "db")
    try:
        assert db.run_loader(tmp_path / "data").returncode == 0
        build = db.dbt("build")
        assert build.returncode == 0, build.stdout[-3000:]
        results = statuses(db)
        assert len(results) >= 30
        assert {name: s for name, s in results.items() if s != "pass"} == {}
    finally:
        drop_database(db)


def test_each_defect_is_caught_by_exactly_its_test(injected_db):
    results = statuses(injected_db)
    flagged = {name for name, status in results.items() if status in {"warn", "fail", "error"}}
    expected = {test for test, _ in DEFECTS.values()}
    assert flagged == expected
    assert results["stg_prices_volume_not_negative"] == "fail"  # an error: it would corrupt volume sums
    for name in flagged - {"stg_prices_volume_not_negative"}:
        assert results[name] == "warn", name
    for name in flagged:
        named = set().union(*(symbols_named(row) for row in failing_rows(injected_db, name)))
        planted = {symbol for symbol, (test, _) in DEFECTS.items() if test == name}
        assert named == planted, (name, named)


@pytest.mark.parametrize("symbol", sorted(DEFECTS))
def test_the_planted_row_is_among_the_stored_failures(injected_db, symbol):
    test_name, date = DEFECTS[symbol]
    rows = [r for r in failing_rows(injected_db, test_name) if symbol in symbols_named(r)]
    assert rows, f"{symbol} not in audit.{test_name}"
    if date is not None:
        dates = {str(v) for row in rows for v in row.values()}
        assert date in dates, (symbol, test_name, rows[:3])


def test_the_real_sample_builds_green_with_warnings_at_its_real_defects(sample_db: Database):
    results = {
        r["unique_id"].split(".")[2]: (r["status"], r["failures"])
        for r in sample_db.build_results["results"]
        if r["unique_id"].startswith("test.")
    }
    warned = {name: failures for name, (status, failures) in results.items() if status == "warn"}
    assert warned == {
        "stg_prices_no_empty_rows": 3,
        "stg_prices_no_missing_sessions": 1,
        "stg_prices_ohlc_consistent": 1,
        "stg_prices_positive": 8202,
        "stg_prices_zero_volume_days": 17,
        "stg_prices_stale_close": 72,
        "stg_prices_adjustment_steps": 2208,
    }
    assert all(status == "pass" for name, (status, _) in results.items() if name not in warned)
    empty = {(r["symbol"], str(r["trade_date"])) for r in failing_rows(sample_db, "stg_prices_no_empty_rows")}
    assert empty == {("BAC", "1995-05-29"), ("CAT", "1995-04-14"), ("CAT", "2016-01-18")}
    [gap] = failing_rows(sample_db, "stg_prices_no_missing_sessions")
    assert (gap["symbol"], str(gap["missing_session"])) == ("AAPL", "1981-08-10")
    zero_opens = {r["symbol"] for r in failing_rows(sample_db, "stg_prices_positive")}
    assert zero_opens == {"BAC", "ED", "CVX", "AMD", "ADBE", "CSCO"}
