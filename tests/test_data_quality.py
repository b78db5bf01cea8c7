"""Defect injection: clean data passes every dbt test; each planted defect is caught by exactly
the test meant for it, with the planted row among that test's stored failures.

Each defect goes into a symbol of its own, so one build checks them all: a test's failing rows
must name exactly the symbols planted for it, and no other test may name them. A finding the
marts tolerate warns at any count or share (a third of a symbol's days jumping included) and
the marts build: floods are the price guard's to catch (tests/test_price_guard.py). And the
stock/ETF rule: staging and dim_symbols answer the same when folder and metadata disagree.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.databases import Database, create_database, drop_database
from devtools.project import PROJECT_DIR

SESSIONS = [line.strip() for line in (PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv").open()][1:]
LIFE = [d for d in SESSIONS if "2019-01-01" <= d <= "2019-12-31"]  # 252 sessions
# Weekdays just past the calendar seed's last session (2027-12-31).
PAST_CALENDAR = ["2028-01-03", "2028-01-04", "2028-01-05"]
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


def clean_series(seed: int, dates: list[str] = LIFE) -> list[Bar]:
    """A calm random walk on every session given (2019's by default): consistent OHLC, constant
    adj ratio, no repeats."""
    rng = random.Random(seed)
    price, bars = 50.0 + seed, []
    for date in dates:
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
    "LATE": ("stg_prices_within_calendar", PAST_CALENDAR[0]),  # prices the calendar has not reached
}
# Folder and metadata disagree: ETFM sits in stocks/ but the metadata flags an ETF; STKF sits in
# etfs/ but the metadata says stock (FOLDERS: where a file goes when not stocks/).
FOLDERS = {"STKF": "etfs"}
META_ETF = {"ETFM"}
# Unexplained jumps on real data: 1,428 rows in 8.7 M (2,642 Kaggle files); the guard is 10x.
REAL_JUMP_RATE = 1_428 / 8_700_000


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


def write_dataset(
    folder: Path,
    symbols: list[str],
    unknown: set[str],
    series: Callable[[int, str], list[Bar]] | None = None,
) -> None:
    """One file per symbol (in stocks/ unless FOLDERS says etfs/) and the metadata of every
    symbol but `unknown`; `series` gives a symbol's bars (default: clean, with its defect)."""
    for sub in ("stocks", "etfs"):
        (folder / sub).mkdir(parents=True)
    meta = [META_HEADER]
    for seed, symbol in enumerate(symbols):
        if series is not None:
            bars = series(seed, symbol)
        elif symbol == "LATE":  # the calendar's last 20 sessions, then 3 weekdays past it
            bars = clean_series(seed, SESSIONS[-20:] + PAST_CALENDAR)
        else:
            bars = clean_series(seed)
            if symbol in DEFECTS:
                bars = plant(symbol, bars)
        path = folder / FOLDERS.get(symbol, "stocks") / f"{symbol}.csv"
        path.write_text(HEADER + "".join(b.line() for b in bars))
        if symbol not in unknown:
            etf = "Y" if symbol in META_ETF else "N"
            meta.append(f"Y,{symbol},{symbol} Test Inc.,N, ,{etf},100.0,N,,{symbol},{symbol},N\n")
    (folder / "symbols_valid_meta.csv").write_text("".join(meta))


@pytest.fixture(scope="module")
def injected_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    folder = tmp_path_factory.mktemp("injected")
    write_dataset(folder / "data", ["CLEA", "CLEB", "ETFM", "STKF", *DEFECTS], unknown={"UNKN"})
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
    return {str(v) for v in row.values()} & {*DEFECTS, "CLEA", "CLEB", "ETFM", "STKF"}


@pytest.mark.editions
def test_clean_data_passes_every_test(tmp_path):
    write_dataset(tmp_path / "data", ["CLEA", "CLEB", "CLEC"], unknown=set())
    db = create_database(tmp_path / "db")
    try:
        assert db.run_loader(tmp_path / "data").returncode == 0
        build = db.dbt("build")
        assert build.returncode == 0, build.stdout[-3000:]
        results = statuses(db)
        # Every test a defect is planted for ran, and the singular tests; none complained.
        assert {test for test, _ in DEFECTS.values()} <= set(results)
        assert {
            "assert_period_marts_count_every_trading_day_once",
            "assert_trading_days_continue_their_series",
            "assert_asset_type_agrees_between_staging_and_dim_symbols",
        } <= set(results)
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


@pytest.mark.editions
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
        "stg_prices_zero_volume_days": 17,
        "stg_prices_stale_close": 72,
        "stg_prices_adjustment_steps": 2208,
    }
    assert all(status == "pass" for name, (status, _) in results.items() if name not in warned)
    empty = {(r["symbol"], str(r["trade_date"])) for r in failing_rows(sample_db, "stg_prices_no_empty_rows")}
    assert empty == {("BAC", "1995-05-29"), ("CAT", "1995-04-14"), ("CAT", "2016-01-18")}
    [gap] = failing_rows(sample_db, "stg_prices_no_missing_sessions")
    assert (gap["symbol"], str(gap["missing_session"])) == ("AAPL", "1981-08-10")
    assert failing_rows(sample_db, "stg_prices_positive") == []  # the zero opens: not recorded


def stale_runs_by_pandas(db: Database, min_run_length: int = 5) -> set[tuple[str, str, str, int]]:
    """Runs of `min_run_length` or more equal closes in a row, per symbol in date order (rows
    without a close left out), counted by pandas from staging."""
    prices = db.frame(
        "select symbol, trade_date, close from staging.stg_market_data__daily_prices "
        "where close is not null order by symbol, trade_date"
    )
    run_number = (prices["close"] != prices.groupby("symbol")["close"].shift()).cumsum()
    runs = prices.groupby(["symbol", run_number]).agg(
        start=("trade_date", "min"), end=("trade_date", "max"), length=("trade_date", "size")
    )
    long_runs = runs[runs["length"] >= min_run_length].reset_index()
    return {(r.symbol, str(r.start), str(r.end), int(r.length)) for r in long_runs.itertuples(index=False)}


def stale_runs_reported(db: Database) -> set[tuple[str, str, str, int]]:
    return {
        (r["symbol"], str(r["run_start"]), str(r["run_end"]), r["run_length"])
        for r in failing_rows(db, "stg_prices_stale_close")
    }


@pytest.mark.one_pass
def test_stale_closes_are_the_runs_pandas_finds(sample_db: Database, injected_db):
    """Every run of 5 or more equal closes, with its first and last day and length, on the
    real sample (72 runs) and on the planted series (STAL's six days), as pandas counts them."""
    for db in (sample_db, injected_db):
        assert stale_runs_reported(db) == stale_runs_by_pandas(db)
    planted = LIFE.index(DEFECTS["STAL"][1])
    assert ("STAL", LIFE[planted], LIFE[planted + 5], 6) in stale_runs_reported(injected_db)
    assert len(stale_runs_reported(sample_db)) == 72


def test_prices_past_the_calendar_are_named_by_symbol_and_date(injected_db):
    rows = failing_rows(injected_db, "stg_prices_within_calendar")
    assert {(r["symbol"], str(r["trade_date"]), str(r["last_session"])) for r in rows} == {
        ("LATE", date, SESSIONS[-1]) for date in PAST_CALENDAR
    }
    assert SESSIONS[-1] >= "2027-12-31"  # the seed reaches at least through 2027


def build_and_statuses(db: Database, folder: Path) -> tuple[int, dict[str, dict]]:
    load = db.run_loader(folder)
    assert load.returncode == 0, load.stderr
    build = db.dbt("build")
    results = {r["unique_id"].split(".")[2]: r for r in db.dbt_results()["results"]}
    return build.returncode, results


def test_jumps_at_three_times_the_real_rate_warn_and_the_marts_build(tmp_path):
    """224,000 rows with unexplained jumps at 3x the real rate (110 of them); folder and
    metadata disagreeing on stock or ETF in two symbols."""
    life = [d for d in SESSIONS if d >= "2010-01-01"][:2000]
    jumping = [f"J{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(110)]

    def series(seed: int, symbol: str) -> list[Bar]:
        bars = clean_series(seed, life)
        if symbol in jumping:
            for bar in bars[100 + 15 * seed :]:  # a level shift: one jump, the adj ratio kept
                scale(bar, 4.0 if seed % 2 else 0.25)
        return bars

    write_dataset(tmp_path / "data", [*jumping, "ETFM", "STKF"], unknown=set(), series=series)
    db = create_database(tmp_path / "db")
    try:
        returncode, results = build_and_statuses(db, tmp_path / "data")
        assert returncode == 0
        jumps = results["stg_prices_unexplained_jumps"]
        assert (jumps["status"], jumps["failures"]) == ("warn", 110)
        assert len(failing_rows(db, "stg_prices_unexplained_jumps")) == 110
        assert 2.9 < 110 / 224_000 / REAL_JUMP_RATE < 3.1
        others = {
            name: r["status"]
            for name, r in results.items()
            if r["unique_id"].startswith("test.") and name != "stg_prices_unexplained_jumps"
        }
        assert set(others.values()) == {"pass"}, others
        assert results["fct_price_averages_monthly"]["status"] == "success"

        # One rule for stock or ETF: the metadata wins over the folder, in staging and the mart.
        staged = dict(
            db.query(
                "select distinct symbol, asset_type from staging.stg_market_data__daily_prices "
                "where symbol in ('ETFM', 'STKF')"
            )
        )
        reader = db.connect(role="reader")
        try:
            with reader.cursor() as cur:
                cur.execute(
                    "select symbol, asset_type from marts.dim_symbols where symbol in ('ETFM', 'STKF')"
                )
                dim = dict(cur.fetchall())
        finally:
            reader.close()
        assert staged == dim == {"ETFM": "etf", "STKF": "stock"}
    finally:
        drop_database(db)


def test_a_flood_of_jumps_warns_and_never_stops_the_marts(tmp_path):
    """Every other day of one symbol x5: 251 jumps in 756 rows (33%). No count or share of a
    finding the marts tolerate is an error: it warns, names every row, and the marts build."""

    def series(seed: int, symbol: str) -> list[Bar]:
        bars = clean_series(seed)
        if symbol == "JUMP":
            for bar in bars[1::2]:
                scale(bar, 5.0)
        return bars

    write_dataset(tmp_path / "data", ["CLEA", "CLEB", "JUMP"], unknown=set(), series=series)
    db = create_database(tmp_path / "db")
    try:
        returncode, results = build_and_statuses(db, tmp_path / "data")
        assert returncode == 0
        jumps = results["stg_prices_unexplained_jumps"]
        assert (jumps["status"], jumps["failures"]) == ("warn", 251)
        assert {r["symbol"] for r in failing_rows(db, "stg_prices_unexplained_jumps")} == {"JUMP"}
        assert results["fct_price_averages_monthly"]["status"] == "success"
    finally:
        drop_database(db)


@pytest.mark.editions
def test_a_daily_build_tests_the_new_rows_and_full_tests_every_row(tmp_path):
    """Tests scale with the change: after a build, each file one line longer. The second build
    tests the new day (with the stored day before it where a test compares days): an old
    OHLC break is not reported again, a jump from the stored close and a session missed
    between the stored day and the new one are. A test reads what it has not seen pass: a lone
    `dbt test` right after reports nothing again, one after a `dbt run` tests that run's rows;
    `--vars '{full_tests: true}'` every row."""
    next_day, day_after = [d for d in SESSIONS if d > LIFE[-1]][:2]
    symbols = ["CLEA", "CLEB", "HILO", "SKIP"]
    appended = {"CLEA": next_day, "CLEB": next_day, "HILO": next_day, "SKIP": day_after}

    def first_build(seed: int, symbol: str) -> list[Bar]:
        bars = clean_series(seed)
        return plant(symbol, bars) if symbol == "HILO" else bars

    def calm_bar_after(last: Bar, date: str) -> Bar:
        return Bar(
            date,
            last.close,
            last.close * 1.004,
            last.close * 0.996,
            last.close,
            last.close * ADJ_RATIO,
            20_000,
        )

    def one_line_longer(seed: int, symbol: str) -> list[Bar]:
        bars = first_build(seed, symbol)
        new = calm_bar_after(bars[-1], appended[symbol])
        if symbol == "CLEB":
            scale(new, 5.0)  # five times yesterday's close, the adj ratio unchanged
        return [*bars, new]

    def clea_jumps_next(seed: int, symbol: str) -> list[Bar]:
        bars = one_line_longer(seed, symbol)
        if symbol != "CLEA":
            return bars
        new = calm_bar_after(bars[-1], day_after)
        scale(new, 5.0)
        return [*bars, new]

    write_dataset(tmp_path / "day1", symbols, unknown=set(), series=first_build)
    write_dataset(tmp_path / "day2", symbols, unknown=set(), series=one_line_longer)
    write_dataset(tmp_path / "day3", symbols, unknown=set(), series=clea_jumps_next)
    db = create_database(tmp_path / "db")
    try:
        returncode, results = build_and_statuses(db, tmp_path / "day1")
        assert returncode == 0
        assert results["stg_prices_ohlc_consistent"]["status"] == "warn"

        load = db.run_loader(tmp_path / "day2")
        assert load.returncode == 0, load.stderr
        assert db.scalar("select count(*) from raw.load_log where load_mode = 'append'") == 4
        build = db.dbt("build")
        assert build.returncode == 0, build.stdout[-3000:]
        results = statuses(db)
        assert results["stg_prices_ohlc_consistent"] == "pass"  # HILO's old break: not tested again
        assert {n: s for n, s in results.items() if s != "pass"} == {
            "stg_prices_unexplained_jumps": "warn",
            "stg_prices_no_missing_sessions": "warn",
        }
        [jump] = failing_rows(db, "stg_prices_unexplained_jumps")
        assert (jump["symbol"], str(jump["trade_date"])) == ("CLEB", next_day)
        [gap] = failing_rows(db, "stg_prices_no_missing_sessions")
        assert (gap["symbol"], str(gap["missing_session"])) == ("SKIP", next_day)

        # A lone `dbt test` now: nothing its tests have not seen pass (or warn), so CLEB's jump,
        # reported with the build that brought it, is not reported again.
        assert db.dbt("test").returncode == 0
        assert statuses(db)["stg_prices_unexplained_jumps"] == "pass"
        # A `dbt run` applies CLEA's jump; the lone `dbt test` after it tests that run's rows.
        assert db.run_loader(tmp_path / "day3").returncode == 0
        assert db.dbt("run").returncode == 0
        assert db.dbt("test").returncode == 0
        assert statuses(db)["stg_prices_unexplained_jumps"] == "warn"
        [jump] = failing_rows(db, "stg_prices_unexplained_jumps")
        assert (jump["symbol"], str(jump["trade_date"])) == ("CLEA", day_after)

        # One flag away: every row, HILO's old break included.
        assert db.dbt("test", "--vars", "{full_tests: true}").returncode == 0
        full = statuses(db)
        assert full["stg_prices_ohlc_consistent"] == "warn"
        named = set().union(*(symbols_named(r) for r in failing_rows(db, "stg_prices_ohlc_consistent")))
        assert named == {"HILO"}
        assert full["stg_prices_unexplained_jumps"] == "warn"
        assert len(failing_rows(db, "stg_prices_unexplained_jumps")) == 2  # CLEB's and CLEA's
    finally:
        drop_database(db)


@pytest.mark.editions
@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ("{accept_held_prices: [1]}", "var accept_held_prices: a symbol, a list of symbols or '*', got [1]"),
        ("{price_guard_false_alarm_rate: 2}", "var price_guard_false_alarm_rate must be a probability"),
    ],
)
def test_a_bad_price_guard_var_fails_with_a_clear_message(injected_db, variables, message):
    proc = injected_db.dbt("build", "-s", "stg_market_data__daily_prices", "--vars", variables)
    assert proc.returncode != 0
    assert message in proc.stdout


@pytest.mark.editions
def test_a_zero_open_is_not_recorded_and_never_a_candles_open(sample_db: Database):
    """Yahoo's 0 open beside a positive close (8,202 sample rows: BAC 1973-86, ED and CVX
    1962-69, AMD 1980-83 ...) means "not recorded": staging keeps the row with a null open,
    every other value as written; a period's open is its first recorded one, never 0."""
    zero_opens = sample_db.scalar(
        "select count(*) from raw.daily_prices as prices join raw.load_log using (load_id) "
        "where prices.open ~ '^0(\\.0*)?$' and prices.close::float8 > 0"
    )
    assert zero_opens == 8202
    staged = sample_db.query(
        "select count(*), count(close), count(high), count(low), min(close) > 0 "
        "from staging.stg_market_data__daily_prices where open is null and close is not null"
    )
    assert staged == [(8202, 8202, 8202, 8202, True)]
    assert sample_db.scalar("select count(*) from staging.stg_market_data__daily_prices where open <= 0") == 0
    wrong = sample_db.scalar(
        """
        select count(*) from marts.fct_price_averages_monthly as mart
        where mart.period_open is distinct from (
            select staged.open from staging.stg_market_data__daily_prices as staged
            where staged.symbol = mart.symbol and staged.open is not null
                and staged.trade_date >= mart.period_start
                and staged.trade_date < mart.period_start + interval '1 month'
            order by staged.trade_date
            limit 1
        )
        """
    )
    assert wrong == 0
    assert (
        sample_db.scalar("select count(*) from marts.fct_price_averages_monthly where period_open = 0") == 0
    )


def test_a_session_where_most_symbols_repeat_their_close_is_held_back_for_those(tmp_path):
    """The price guard across symbols: one repeated close is nothing for any symbol (a run of
    1), but a session where 25 of 30 symbols repeat yesterday's close, against 20 sessions
    before where none did, is a feed that froze: those 25 are held back, the other 5 go in."""
    symbols = [f"FRZ{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(30)]
    frozen = set(symbols[:25])
    next_day = next(d for d in SESSIONS if d > LIFE[-1])

    def one_day_more(seed: int, symbol: str) -> list[Bar]:
        bars = clean_series(seed)
        last = bars[-1]
        close = last.close if symbol in frozen else last.close * 1.01
        return [*bars, Bar(next_day, close, close * 1.004, close * 0.996, close, close * ADJ_RATIO, 20_000)]

    write_dataset(tmp_path / "day1", symbols, unknown=set(), series=lambda seed, _: clean_series(seed))
    write_dataset(tmp_path / "day2", symbols, unknown=set(), series=one_day_more)
    db = create_database(tmp_path / "db")
    try:
        returncode, _ = build_and_statuses(db, tmp_path / "day1")
        assert returncode == 0
        returncode, results = build_and_statuses(db, tmp_path / "day2")
        assert returncode == 1
        assert results["assert_no_held_back_prices"]["status"] == "fail"
        held = db.query("select symbol, finding, reason from staging.stg_market_data__held_prices")
        assert {symbol for symbol, _, _ in held} == frozen
        assert {finding for _, finding, _ in held} == {"repeated_close"}
        assert all(f"the close repeated on {next_day} in 25 of 30 symbols" in reason for *_, reason in held)
        latest = dict(db.query("select symbol, max(trade_date)::text from marts.fct_daily_prices group by 1"))
        assert {s for s, d in latest.items() if d == next_day} == set(symbols) - frozen
    finally:
        drop_database(db)


def rows_the_test_reads(db: Database, test_name: str) -> int:
    """How many raw rows the last run of a raw table's scoped test read: its compiled subquery
    (`from (...) as dbt_subquery`), counted."""
    [compiled] = (db.work_dir / "target" / "compiled").rglob(f"{test_name}.sql")
    subquery = re.search(r"from \((.*)\) as dbt_subquery", compiled.read_text(), re.DOTALL)
    assert subquery is not None, compiled.read_text()
    return db.scalar(f"select count(*) from ({subquery[1]}) as read_rows")


@pytest.mark.one_pass
def test_raw_rows_are_checked_against_the_load_log_once_per_load(own_sample_db: Database, tmp_path):
    """The raw prices' load-id test reads the rows of the loads it has not seen pass: none
    when nothing was loaded, a new load's rows once. A row under a load id the log never had
    fails every run, named by its id, until it is gone; --vars '{full_tests: true}' reads every row."""
    db, test = own_sample_db, "raw_prices_load_in_load_log"
    every_row = db.scalar("select count(*) from raw.daily_prices")

    assert db.dbt("test", "--select", test).returncode == 0
    assert statuses(db)[test] == "pass"
    assert rows_the_test_reads(db, test) == 0  # the sample's build saw every load pass

    (tmp_path / "NEWS.csv").write_text(HEADER + "".join(bar.line() for bar in clean_series(7)[:3]))
    assert db.run_loader(tmp_path / "NEWS.csv").returncode == 0
    assert db.dbt("test", "--select", test).returncode == 0
    assert rows_the_test_reads(db, test) == 3

    unknown_load = db.scalar("select max(load_id) + 1000 from raw.load_log")
    db.query(
        f"insert into raw.daily_prices (load_id, line_number, date) values ({unknown_load}, 2, '2020-01-02')"
    )
    for _ in range(2):  # a failing test keeps its earlier pass: the row is read again
        assert db.dbt("test", "--select", test).returncode == 1
        assert statuses(db)[test] == "fail"
        assert failing_rows(db, test) == [{"from_field": unknown_load}]
    db.query(f"delete from raw.daily_prices where load_id = {unknown_load}")
    assert db.dbt("test", "--select", test).returncode == 0
    assert statuses(db)[test] == "pass"

    assert db.dbt("test", "--select", test, "--vars", "{full_tests: true}").returncode == 0
    assert rows_the_test_reads(db, test) == every_row + 3


@pytest.mark.one_pass
def test_period_counts_name_a_mart_that_lost_or_added_a_day(own_sample_db: Database, tmp_path):
    """assert_period_marts_count_every_trading_day_once on a daily build compares the marts with
    the trading days' numbering from the periods the change touched; a mart counting a day
    twice there fails, named by symbol and mart, and so it does when --vars '{full_tests: true}'
    counts the staged rows instead."""
    db, test = own_sample_db, "assert_period_marts_count_every_trading_day_once"
    grown = tmp_path / "AAPL.csv"
    grown.write_text(
        (PROJECT_DIR / "data" / "sample" / "stocks" / "AAPL.csv").read_text()
        + "2021-01-28,139.52,141.99,136.70,137.09,137.09,142621100\n"
    )
    assert db.run_loader(grown).returncode == 0
    run = db.dbt("run")
    assert run.returncode == 0, run.stdout[-3000:]
    month = "(select max(period_start) from marts.fct_price_averages_monthly where symbol = 'AAPL')"
    db.query(
        f"update marts.fct_price_averages_monthly set trading_days = trading_days + 1 "
        f"where symbol = 'AAPL' and period_start = {month}"
    )

    days = db.scalar(
        "select count(*) from intermediate.int_daily_prices__trading_days where symbol = 'AAPL' "
        "and trade_date >= '2021-01-01'"
    )
    assert db.dbt("test", "--select", test).returncode == 1
    assert statuses(db)[test] == "fail"
    assert failing_rows(db, test) == [
        {
            "symbol": "AAPL",
            "mart": "monthly",
            "period_start": dt.date(2021, 1, 1),
            "staged_days": days,
            "counted_days": days + 1,
        }
    ]
    assert db.dbt("test", "--select", test, "--vars", "{full_tests: true}").returncode == 1
    all_days = db.scalar(
        "select count(*) from intermediate.int_daily_prices__trading_days where symbol = 'AAPL'"
    )
    assert failing_rows(db, test) == [
        {
            "symbol": "AAPL",
            "mart": "monthly",
            "period_start": dt.date.min,
            "staged_days": all_days,
            "counted_days": all_days + 1,
        }
    ]

    db.query(
        f"update marts.fct_price_averages_monthly set trading_days = trading_days - 1 "
        f"where symbol = 'AAPL' and period_start = {month}"
    )
    assert db.dbt("test", "--select", test).returncode == 0
    assert failing_rows(db, test) == []
