"""The period marts are kept current incrementally: after each kind of change a load makes (an
appended day, a merged correction of an old date, a replaced history) a normal `dbt run`
touches only the changed symbols' periods, and every period mart equals an aggregation of the
trading days computed from scratch in pandas (1e-12 relative). On the apache path (tables kept
by `<mart>__apply()`) on any server, and on the community edition, where the weekly mart is a
continuous aggregate (months, quarters and years vary in width: tables there too). Either form
re-aggregates only the buckets of the days whose values changed. Two applies at once apply a
change once."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devtools.databases import Database, create_database, drop_database
from devtools.project import SAMPLE_DIR
from tests import reference

PERIODS = {"weekly": "1 week", "monthly": "1 month", "quarterly": "3 months", "yearly": "1 year"}
# fixed-width buckets: the marts that are continuous aggregates where the edition has them
FIXED_WIDTH = ("weekly",)
VALUE_COLUMNS = tuple(reference.PERIOD_VALUE_COLUMNS)
MODES = {
    "tables": "{use_continuous_aggregates: false}",
    "continuous_aggregates": "{use_continuous_aggregates: true}",
}
APPLIED = re.compile(
    r"fct_price_averages_(\w+)\": applied (\d+) changes of \w+ \((\d+) periods deleted, (\d+) inserted\)"
)
REFRESHED = re.compile(
    r"fct_price_averages_(\w+)\": (\d+) changes of \w+ pending, (\d+) windows refreshed(?:, from ([0-9-]+))?"
)
# the period marts' source, whose change log drives them
SOURCE_CHANGES = "staging.stg_market_data__daily_prices__changes"


def bucket(dates: pd.Series, width: str) -> pd.Series:
    """time_bucket's buckets: ISO weeks (Monday), calendar months, quarters and years."""
    if width == "1 week":
        return dates - pd.to_timedelta(dates.dt.day_of_week, unit="D")
    freq = {"1 month": "M", "3 months": "Q", "1 year": "Y"}[width]
    return dates.dt.to_period(freq).dt.start_time


def expected_periods(days: pd.DataFrame, width: str) -> pd.DataFrame:
    """A period mart from scratch: averages over the trading days, the candle (first positive
    open, highest high, lowest low, last close) and the volume."""
    days = days.assign(period_start=bucket(days["trade_date"], width)).sort_values(["symbol", "trade_date"])
    groups = days.groupby(["symbol", "period_start"])
    frame = pd.DataFrame(
        {
            "trading_days": groups.size(),
            "avg_high": groups["high"].mean(),
            "avg_low": groups["low"].mean(),
            "avg_volume": groups["volume"].mean(),
            "avg_close": groups["close"].mean(),
            "period_high": groups["high"].max(),
            "period_low": groups["low"].min(),
            "period_close": groups["close"].last(),
            "total_volume": groups["volume"].sum(min_count=1),
        }
    )
    positive_opens = days[days["open"] > 0].groupby(["symbol", "period_start"])["open"].first()
    return frame.assign(period_open=positive_opens).reset_index()


def trading_days(db: Database) -> pd.DataFrame:
    rows = db.query(
        "select symbol, trade_date, open, high, low, close, volume "
        "from intermediate.int_daily_prices__trading_days"
    )
    frame = pd.DataFrame(rows, columns=["symbol", "trade_date", "open", "high", "low", "close", "volume"])
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    return frame.astype({c: "float64" for c in ("open", "high", "low", "close", "volume")})


def mart(db: Database, period: str) -> pd.DataFrame:
    """The mart as the reader role sees it."""
    conn = db.connect("reader")
    try:
        with conn.cursor() as cur:
            columns = ", ".join(VALUE_COLUMNS)
            cur.execute(f"select symbol, period_start, {columns} from marts.fct_price_averages_{period}")
            frame = pd.DataFrame(cur.fetchall(), columns=["symbol", "period_start", *VALUE_COLUMNS])
    finally:
        conn.close()
    frame["period_start"] = pd.to_datetime(frame["period_start"])
    return frame.astype({c: "float64" for c in VALUE_COLUMNS})


def assert_same_periods(got: pd.DataFrame, want: pd.DataFrame, label: str) -> None:
    """Same (symbol, period_start) keys; values equal to 1e-12 relative, nulls where nulls."""
    got = got.set_index(["symbol", "period_start"]).sort_index()
    want = want.set_index(["symbol", "period_start"]).sort_index()
    assert got.index.is_unique, label
    assert got.index.equals(want.index), (
        label,
        got.index.difference(want.index)[:5].tolist(),
        want.index.difference(got.index)[:5].tolist(),
    )
    for column in VALUE_COLUMNS:
        ok = np.isclose(got[column], want[column], rtol=1e-12, atol=0, equal_nan=True)
        assert ok.all(), (label, column, got[column][~ok].head(3), want[column][~ok].head(3))


def assert_marts_match_trading_days(db: Database) -> None:
    days = trading_days(db)
    for period, width in PERIODS.items():
        assert_same_periods(mart(db, period), expected_periods(days, width), period)


def watermark(db: Database, period: str) -> int:
    return db.scalar(
        "select change_id from staging.incremental_watermarks where consumer = %s",
        (f"marts.fct_price_averages_{period}",),
    )


def is_aggregate(db: Database, period: str) -> bool:
    return db.mode == "continuous_aggregates" and period in FIXED_WIDTH


def pending_changes(db: Database, after: int) -> list[tuple[str | None, object, list | None]]:
    """(symbol, from_date, the dates whose values changed: None where the change does not say)."""
    return db.query(
        "select symbol, from_date, case when value_dates is not null then array("
        "  select day::date from unnest(value_dates) as r,"
        "  generate_series(lower(r), upper(r) - 1, interval '1 day') as day) end "
        f"from {SOURCE_CHANGES} where change_id > %s",
        (after,),
    )


def periods_to_recompute(
    db: Database, width: str, changes: list[tuple[str | None, object, list | None]]
) -> int:
    """The periods the apply rule must insert: per changed symbol, the periods holding the dates
    whose values changed; where a change does not say, its periods from the bucket of its
    earliest changed date on (all of them for a null date)."""
    expected = expected_periods(trading_days(db), width)
    first: dict[str, pd.Timestamp] = {}
    unknown: set[str] = set()
    buckets: dict[str, set[pd.Timestamp]] = {}
    for symbol, from_date, value_dates in changes:
        start = (
            pd.Timestamp.min if from_date is None else bucket(pd.Series([pd.Timestamp(from_date)]), width)[0]
        )
        first[symbol] = min(first.get(symbol, start), start)
        if value_dates is None:
            unknown.add(symbol)
        else:
            buckets.setdefault(symbol, set()).update(bucket(pd.Series(pd.to_datetime(value_dates)), width))
    after_first = expected["period_start"] >= expected["symbol"].map(first)
    holds_change = [
        symbol in unknown or period in buckets.get(symbol, ())
        for symbol, period in zip(expected["symbol"], expected["period_start"], strict=True)
    ]
    return int((after_first & pd.Series(holds_change, index=expected.index)).sum())


def run(db: Database, mode: str) -> str:
    """`dbt run` of the period marts, dim_symbols and what they are built from."""
    marts = [f"+fct_price_averages_{period}" for period in PERIODS]
    proc = db.dbt("run", "--select", *marts, "+dim_symbols", "--vars", MODES[mode])
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def changing_database(factory: pytest.TempPathFactory, mode: str, builds: tuple[str, ...]) -> Database:
    """A database of its own, a copy of the sample loaded and built (`builds`: the modes, in
    order); the tests change it, in order."""
    work = factory.mktemp(f"incremental_{mode}")
    db = create_database(work / "db")
    db.mode = mode
    db.files = work / "files"
    shutil.copytree(SAMPLE_DIR, db.files)
    assert db.run_loader(db.files).returncode == 0
    assert db.dbt("seed").returncode == 0
    for build_mode in builds:
        run(db, build_mode)
    return db


@pytest.fixture(scope="module")
def table_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = changing_database(tmp_path_factory, "tables", ("tables",))
    yield db
    drop_database(db)


@pytest.fixture(scope="module")
def aggregate_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """Built as tables first, then as continuous aggregates: the switch an upgrade makes."""
    db = changing_database(tmp_path_factory, "continuous_aggregates", ("tables", "continuous_aggregates"))
    yield db
    drop_database(db)


@pytest.fixture(
    scope="module",
    params=["tables", pytest.param("continuous_aggregates", marks=pytest.mark.community)],
)
def changing_db(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue("table_db" if request.param == "tables" else "aggregate_db")


def load(db: Database, *args: str | Path) -> None:
    proc = db.run_loader(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_first_build_equals_the_trading_days(changing_db: Database):
    assert changing_db.query(
        "select table_name, table_type from information_schema.tables "
        "where table_schema = 'marts' and table_name like 'fct_price_averages_%' order by 1"
    ) == [
        (f"fct_price_averages_{p}", "VIEW" if is_aggregate(changing_db, p) else "BASE TABLE")
        for p in sorted(PERIODS)
    ]
    assert_marts_match_trading_days(changing_db)


@pytest.mark.parametrize(
    "change",
    ["appended_day", "merged_correction_of_an_old_date", "replaced_history"],
)
def test_an_incremental_change_reaches_every_period_mart(changing_db: Database, change: str):
    db = changing_db
    if change == "appended_day":  # AAPL's file one line longer: the loader appends it
        path = db.files / "stocks" / "AAPL.csv"
        with path.open("a") as f:
            f.write("2021-01-28,139.52,141.99,136.70,137.09,137.09,142621100\n")
        load(db, path)
        changed_day = "2021-01-28"
    elif change == "merged_correction_of_an_old_date":  # one BAC day of 1990 corrected, and an open of 0
        path = db.files / "correction" / "BAC.csv"
        path.parent.mkdir(exist_ok=True)
        day = db.scalar(
            "select min(trade_date) from intermediate.int_daily_prices__trading_days "
            "where symbol = 'BAC' and trade_date >= '1990-06-01'"
        )
        path.write_text(f"Date,Open,High,Low,Close,Adj Close,Volume\n{day},0,9.5,8.25,9.125,4.5,123456\n")
        load(db, path)
        changed_day = str(day)
    else:  # CAT's history replaced by its last 300 lines (the earlier years disappear)
        source = (db.files / "stocks" / "CAT.csv").read_text().splitlines(keepends=True)
        path = db.files / "replace" / "CAT.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text(source[0] + "".join(source[-300:]))
        load(db, "--replace", path)
        changed_day = None

    before = {period: watermark(db, period) for period in PERIODS}
    stdout = run(db, db.mode)

    assert "building the table" not in stdout and "creating the continuous aggregate" not in stdout
    producer_latest = db.scalar(f"select max(change_id) from {SOURCE_CHANGES}")
    assert producer_latest > max(before.values()), "the load changed staging"
    for period in PERIODS:
        assert watermark(db, period) == producer_latest, period
    applied = {m[0]: tuple(map(int, m[1:])) for m in APPLIED.findall(stdout)}
    refreshed = {m[0]: (int(m[1]), int(m[2]), m[3]) for m in REFRESHED.findall(stdout)}
    assert set(refreshed) == {p for p in PERIODS if is_aggregate(db, p)}, stdout[-3000:]
    assert set(applied) == {p for p in PERIODS if not is_aggregate(db, p)}, stdout[-3000:]
    for period, width in PERIODS.items():
        changes = pending_changes(db, before[period])
        if period in applied:
            changes_applied, _deleted, inserted = applied[period]
            assert changes_applied == len(changes) >= 1
            assert inserted == periods_to_recompute(db, width, changes), period
            # only the changed symbol's periods: far fewer than the mart holds
            assert inserted < db.scalar(f"select count(*) from marts.fct_price_averages_{period}") / 5
            if changed_day is not None:  # one day's values changed: its period alone
                assert inserted == 1, period
        else:
            changes_applied, windows, first = refreshed[period]
            assert changes_applied == len(changes) >= 1
            assert windows >= 1
            if changed_day is not None:
                # one day's values changed: its bucket alone is aggregated again (for every symbol)
                want = bucket(pd.Series([pd.Timestamp(changed_day)]), width)[0]
                assert (windows, first) == (1, str(want.date())), period
    assert_marts_match_trading_days(db)


def test_a_merged_file_restating_stored_bars_aggregates_no_period_again(changing_db: Database):
    """AAPL's file loaded again, the same values written differently (a close with one more
    zero, so the loader merges it rather than taking it for the stored file grown): the new
    load holds every row of the earlier ones, which turn superseded, so staging writes AAPL
    again (its lineage moves to the new load); no value changed, so no period mart
    re-aggregates anything."""
    db = changing_db
    lines = (db.files / "stocks" / "AAPL.csv").read_text().splitlines()
    first = lines[1].split(",")
    first[4] += "0" if "." in first[4] else ".0"
    lines[1] = ",".join(first)
    path = db.files / "restated" / "AAPL.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    load(db, path)
    new_load = db.scalar("select max(load_id) from raw.load_log where symbol = 'AAPL'")
    assert db.scalar("select count(*) from raw.load_log where symbol = 'AAPL' and status = 'loaded'") == 1, (
        "the earlier AAPL loads are superseded"
    )

    stdout = run(db, db.mode)

    refreshed = {m[0]: (int(m[2]), m[3]) for m in REFRESHED.findall(stdout)}
    assert refreshed == {p: (0, "") for p in PERIODS if is_aggregate(db, p)}, stdout[-3000:]
    assert stdout.count("windows refreshed (no value changed)") == len(refreshed)
    applied = {m[0]: tuple(map(int, m[1:])) for m in APPLIED.findall(stdout)}
    assert applied == {p: (1, 0, 0) for p in PERIODS if not is_aggregate(db, p)}, stdout[-3000:]
    assert db.query(
        "select distinct load_id from staging.stg_market_data__daily_prices where symbol = 'AAPL'"
    ) == [(new_load,)]
    assert db.query(
        "select distinct load_id from intermediate.int_daily_prices__trading_days where symbol = 'AAPL'"
    ) == [(new_load,)]
    assert_marts_match_trading_days(db)


def test_two_applies_at_once_apply_a_change_once(table_db: Database):
    db = table_db
    apply = "select * from marts.fct_price_averages_monthly__apply()"
    # A change to apply (what staging's build records when it rewrites AAPL from 2020 on).
    db.query(f"insert into {SOURCE_CHANGES} (symbol, from_date) values ('AAPL', '2020-01-15')")
    first, second = db.connect("transformer"), db.connect("transformer")
    first.autocommit = False
    results: dict[str, tuple] = {}
    try:
        with first.cursor() as cur:
            cur.execute(apply)
            results["first"] = cur.fetchone()

            def second_apply() -> None:
                with second.cursor() as cur2:
                    cur2.execute(apply)
                    results["second"] = cur2.fetchone()

            thread = threading.Thread(target=second_apply)
            thread.start()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the second waits on the watermark row lock
                waiting = db.scalar(
                    "select wait_event_type from pg_stat_activity where pid = %s", (second.get_backend_pid(),)
                )
                if waiting == "Lock":
                    break
                time.sleep(0.05)
            assert waiting == "Lock" and "second" not in results
        first.commit()
        thread.join(30)
    finally:
        first.close()
        second.close()
    changes, deleted, inserted = results["first"]
    assert changes == 1 and inserted == deleted == 13  # AAPL's months from January 2020 to January 2021
    assert results["second"] == (0, 0, 0)
    assert_marts_match_trading_days(db)


def test_the_apply_function_is_not_for_everyone(table_db: Database):
    conn = table_db.connect("reader")
    try:
        with conn.cursor() as cur, pytest.raises(Exception, match="permission denied for function"):
            cur.execute("select * from marts.fct_price_averages_monthly__apply()")
    finally:
        conn.close()


@pytest.mark.community
def test_switching_editions_keeps_the_rows(aggregate_db: Database):
    """The continuous aggregates, after the changes above, equal the tables an apache-mode
    build makes of the same trading days; and a normal build switches either way."""
    aggregates = {period: mart(aggregate_db, period) for period in PERIODS}
    stdout = run(aggregate_db, "tables")
    assert stdout.count("building the table (it was built as a continuous aggregate)") == len(FIXED_WIDTH)
    for period, aggregate in aggregates.items():
        assert_same_periods(mart(aggregate_db, period), aggregate, period)
    assert (
        aggregate_db.scalar(
            "select count(*) from pg_proc where proname like 'fct_price_averages_%%__refresh'"
        )
        == 0
    ), "the other edition's rule is gone"


def test_dim_symbols_equals_a_scan_of_the_prices(table_db: Database):
    """After the changes above (CAT's history replaced: its first date moved), the symbols'
    spans and counts from index lookups equal a full scan of staging."""
    scanned = table_db.query(
        "select symbol, min(trade_date), max(trade_date), count(close) "
        "from staging.stg_market_data__daily_prices group by symbol order by symbol"
    )
    conn = table_db.connect("reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select symbol, first_trade_date, last_trade_date, trading_days from marts.dim_symbols "
                "where has_prices order by symbol"
            )
            looked_up = cur.fetchall()
            cur.execute(
                "select count(*), count(*) filter (where trading_days = 0 and first_trade_date is null) "
                "from marts.dim_symbols where not has_prices"
            )
            without_prices, empty = cur.fetchone()
    finally:
        conn.close()
    assert looked_up == scanned
    replaced_from = (table_db.files / "replace" / "CAT.csv").read_text().splitlines()[1].split(",")[0]
    assert next(row for row in looked_up if row[0] == "CAT")[1].isoformat() == replaced_from
    assert without_prices == empty > 0  # metadata-only symbols
