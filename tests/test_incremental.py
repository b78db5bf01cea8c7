"""Incremental builds: each build applies only what the loader added, and the result equals a
full rebuild (--full-refresh) to 1e-12 relative and the pandas reference on the same files.

One database for the module: the sample loaded and built, then a day of changes (appended
days, a merged correction of an old close, a replaced history, a new symbol) loaded and
built incrementally.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devtools.databases import Database, create_database, drop_database
from devtools.project import DBT, PROJECT_DIR, SAMPLE_DIR
from tests import reference

# Every test here runs dbt: on both editions (make test).
pytestmark = pytest.mark.editions

APPENDED = ("AAPL", "AMD")
CORRECTED = "BA"  # a merged full file with one old close changed
CORRECTED_DATE = "1990-03-01"
# A merged correction on its 10th trading day: the indicators' state there is not complete
# (resume_when), so the whole symbol is computed again.
EARLY_CORRECTED, EARLY_CORRECTED_DATE = "ARKK", "2014-11-13"
REPLACED = "CAT"  # --replace with the first half of its history
NEW_SYMBOL = "ZNEW"  # a copy of DIS under a new name

# Every relation the incremental step maintains, with its key.
PERSISTED = {
    "staging.stg_market_data__daily_prices": ["symbol", "trade_date"],
    "intermediate.int_daily_prices__trading_days": ["symbol", "trade_date"],
    "intermediate.int_daily_prices__symbol_firsts": ["symbol"],
    "intermediate.int_daily_prices__symbol_spans": ["symbol"],
    "marts.fct_price_averages_weekly": ["symbol", "period_start"],
    "marts.fct_price_averages_monthly": ["symbol", "period_start"],
    "marts.fct_price_averages_quarterly": ["symbol", "period_start"],
    "marts.fct_price_averages_yearly": ["symbol", "period_start"],
    "marts.dim_symbols": ["symbol"],
    "marts.fct_latest_day": ["symbol"],
}
# When a load finished differs between two loads of the same rows; nothing else may.
IGNORED_COLUMNS = {"loaded_at"}


def snapshot(db: Database) -> dict[str, pd.DataFrame]:
    return {
        relation: db.frame(f"select * from {relation} order by {', '.join(key)}")
        for relation, key in PERSISTED.items()
    }


def assert_frames_equal(actual: pd.DataFrame, expected: pd.DataFrame, relation: str) -> None:
    assert list(actual.columns) == list(expected.columns), relation
    assert len(actual) == len(expected), (relation, len(actual), len(expected))
    for column in actual.columns:
        if column in IGNORED_COLUMNS:
            continue
        left, right = actual[column], expected[column]
        numeric = pd.api.types.is_numeric_dtype(right) or right.map(type).eq(type(None)).all()
        if numeric or right.dropna().map(lambda v: isinstance(v, float | int)).all():
            a = pd.to_numeric(left, errors="coerce").astype(float).to_numpy()
            b = pd.to_numeric(right, errors="coerce").astype(float).to_numpy()
            assert (np.isnan(a) == np.isnan(b)).all(), (relation, column, "nulls differ")
            mask = ~np.isnan(b)
            scale = np.maximum(np.abs(b[mask]), 1e-300)
            worst = float(np.max(np.abs(a[mask] - b[mask]) / scale)) if mask.any() else 0.0
            assert worst <= 1e-12, (relation, column, worst)
        else:
            differs = ~((left == right) | (left.isna() & right.isna()))
            assert not differs.any(), (relation, column, actual[differs].head(3))


def next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def append_day(path: Path) -> None:
    """One more trading day at the end of a file (the loader sees an append)."""
    last = path.read_text().rstrip("\n").rsplit("\n", 1)[-1].split(",")
    day = next_business_day(date.fromisoformat(last[0]))
    close = float(last[4]) * 1.01
    with path.open("a") as out:
        out.write(f"{day},{close},{close * 1.02},{close * 0.98},{close},{close},1234567\n")


def change_close(path: Path, day: str, factor: float) -> None:
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if line.startswith(day + ","):
            fields = line.split(",")
            fields[4] = repr(float(fields[4]) * factor)
            lines[i] = ",".join(fields)
            break
    else:
        raise AssertionError(f"{day} not in {path}")
    path.write_text("\n".join(lines))


def daily_changes(files: Path, scratch: Path) -> tuple[Path, Path]:
    """Edit a copy of the sample as a day of real use would; returns (replace file folder)."""
    for symbol in APPENDED:
        append_day(files / "stocks" / f"{symbol}.csv")
    change_close(files / "stocks" / f"{CORRECTED}.csv", CORRECTED_DATE, 1.5)
    change_close(files / "etfs" / f"{EARLY_CORRECTED}.csv", EARLY_CORRECTED_DATE, 1.1)
    shutil.copy(files / "stocks" / "DIS.csv", files / "stocks" / f"{NEW_SYMBOL}.csv")
    # The replaced history: the first half of the file, loaded on its own with --replace;
    # the sample copy gets the same content so the reference reads what the database holds.
    replaced = files / "stocks" / f"{REPLACED}.csv"
    lines = replaced.read_text().splitlines(keepends=True)
    replaced.write_text("".join(lines[: len(lines) // 2]))
    replace_dir = scratch / "replace" / "stocks"
    replace_dir.mkdir(parents=True)
    shutil.copy(replaced, replace_dir / replaced.name)
    return files, replace_dir.parent


def build(db: Database, *args: str) -> None:
    proc = db.dbt("build", *args)
    assert proc.returncode == 0, proc.stdout[-4000:]


def load(db: Database, *args: str | Path) -> None:
    proc = db.run_loader(*args)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module")
def changed_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Path]]:
    scratch = tmp_path_factory.mktemp("incremental")
    files = scratch / "files"
    shutil.copytree(SAMPLE_DIR, files)
    db = create_database(scratch / "db")
    load(db, files)
    build(db)
    db.oids_before = dict(  # type: ignore[attr-defined]
        db.query(
            "select relname, oid::bigint from pg_class where relname in "
            "('stg_market_data__daily_prices', 'int_daily_prices__trading_days')"
        )
    )
    files, replace_dir = daily_changes(files, scratch)
    load(db, replace_dir, "--replace")
    load(db, files)  # the replaced file is unchanged now: skipped
    build(db)
    db.incremental = snapshot(db)  # type: ignore[attr-defined]
    yield db, files
    drop_database(db)


def test_incremental_build_equals_full_refresh(changed_db: tuple[Database, Path]):
    db, _ = changed_db
    build(db, "--full-refresh")
    full = snapshot(db)
    for relation, frame in db.incremental.items():  # type: ignore[attr-defined]
        assert_frames_equal(frame, full[relation], relation)


def test_incremental_build_applied_each_kind_of_load(changed_db: tuple[Database, Path]):
    db, _ = changed_db
    modes = dict(
        db.query(
            "select load_log.symbol, applied.load_mode from staging.stg_market_data__applied_loads applied "
            "join raw.load_log using (load_id) where load_log.symbol in %s and load_log.load_id = "
            "(select max(load_id) from raw.load_log newest where newest.symbol = load_log.symbol)",
            ((*APPENDED, CORRECTED, EARLY_CORRECTED, REPLACED, NEW_SYMBOL),),
        )
    )
    assert modes == {
        **dict.fromkeys(APPENDED, "append"),
        CORRECTED: "merge",
        EARLY_CORRECTED: "merge",
        REPLACED: "replace",
        NEW_SYMBOL: "merge",
    }

    # The trading days go on from BA's stored state from where staging changed it (the date of
    # the correction; the apache edition's staging recomputes a merged symbol whole), and
    # recompute ARKK whole whatever staging says: its state there is incomplete (resume_when).
    # A symbol computed whole is logged from its first trading day, not as null: a real bound
    # for the models the log feeds.
    def first_changed(changes: str) -> dict[str, str | None]:
        return dict(
            db.query(
                f"select distinct on (symbol) symbol, from_date::text from {changes}"
                " where symbol in %s order by symbol, change_id desc",
                ((CORRECTED, EARLY_CORRECTED, NEW_SYMBOL),),
            )
        )

    staged = first_changed("staging.stg_market_data__daily_prices__changes")
    assert staged[CORRECTED] in (CORRECTED_DATE, None)
    assert staged[EARLY_CORRECTED] in (EARLY_CORRECTED_DATE, None)
    first_dates = dict(
        db.query(
            "select symbol, min(trade_date)::text from intermediate.int_daily_prices__trading_days"
            " where symbol in %s group by symbol",
            ((CORRECTED, EARLY_CORRECTED, NEW_SYMBOL),),
        )
    )
    days = first_changed("intermediate.int_daily_prices__trading_days__changes")
    assert days == {
        CORRECTED: staged[CORRECTED] or first_dates[CORRECTED],
        EARLY_CORRECTED: first_dates[EARLY_CORRECTED],
        NEW_SYMBOL: first_dates[NEW_SYMBOL],
    }
    corrected = db.scalar(
        "select close from marts.fct_daily_prices where symbol = %s and trade_date = %s",
        (CORRECTED, CORRECTED_DATE),
    )
    original = reference.daily_prices()
    before = original[(original.symbol == CORRECTED) & (original.trade_date == CORRECTED_DATE)].close.item()
    assert corrected == pytest.approx(before * 1.5, rel=1e-12)


def test_incremental_marts_equal_pandas_on_the_changed_files(changed_db: tuple[Database, Path]):
    db, files = changed_db
    actual = db.frame("select * from marts.fct_daily_moving_averages")
    actual["trade_date"] = pd.to_datetime(actual["trade_date"])
    expected = reference.moving_averages(files)
    assert len(actual) == len(expected)
    values = ["close", *(f"sma_{n}" for n in reference.MOVING_AVERAGE_WINDOWS)]
    assert reference.assert_matches(actual, expected, ["symbol", "trade_date"], values) < 1e-9
    for period in ("weekly", "monthly", "quarterly", "yearly"):
        actual = db.frame(f"select * from marts.fct_price_averages_{period}")
        actual["period_start"] = pd.to_datetime(actual["period_start"])
        expected = reference.period_averages(period, files)
        assert len(actual) == len(expected), period
        worst = reference.assert_matches(
            actual, expected, ["symbol", "period_start"], reference.PERIOD_VALUE_COLUMNS
        )
        assert worst < 1e-9, period


def test_incremental_indicators_equal_talib_on_the_changed_files(changed_db: tuple[Database, Path]):
    """Appended days and the correction go on from the state stored before them; the replaced
    history and the new symbol start from nothing: all equal TA-Lib on the files as they are."""
    db, files = changed_db
    actual = db.frame("select * from marts.fct_daily_indicators")
    actual["trade_date"] = pd.to_datetime(actual["trade_date"])
    expected = reference.indicators(files)
    assert reference.assert_indicators_match(actual, expected) < 1e-9


def test_normal_builds_keep_the_incremental_tables(changed_db: tuple[Database, Path]):
    """No drop, no swap: the tables built first are the ones a later build updated."""
    db, _ = changed_db
    oids = dict(
        db.query(
            "select relname, oid::bigint from pg_class where relname in "
            "('stg_market_data__daily_prices', 'int_daily_prices__trading_days')"
        )
    )
    assert oids == db.oids_before  # type: ignore[attr-defined]


APPLY_STAGING = (
    "select loads_applied, symbols_recomputed, rows_written "
    "from staging.stg_market_data__daily_prices__apply()"
)


def apply_staging(db: Database) -> tuple[int, int, int]:
    conn = db.connect(role="transformer")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(APPLY_STAGING)
            return cur.fetchone()
    finally:
        conn.close()


def test_a_second_apply_finds_nothing_left(changed_db: tuple[Database, Path]):
    db, _ = changed_db
    assert apply_staging(db) == (0, 0, 0)


def test_two_applies_at_once_apply_a_load_once(changed_db: tuple[Database, Path], tmp_path: Path):
    """The first apply holds the lock until it commits; the second then finds nothing."""
    db, files = changed_db
    append_day(files / "stocks" / "AAPL.csv")
    load(db, files)
    rows_before = db.scalar("select count(*) from staging.stg_market_data__daily_prices")
    first = db.connect(role="transformer")
    first.autocommit = False  # hold the apply's lock until the commit below
    results: dict[str, tuple] = {}
    try:
        cur = first.cursor()
        cur.execute(APPLY_STAGING)
        results["first"] = cur.fetchone()

        def second_apply() -> None:
            results["second"] = apply_staging(db)

        waiter = threading.Thread(target=second_apply)
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive(), "the second apply did not wait for the first"
        first.commit()
        waiter.join(timeout=60)
    finally:
        first.close()
    assert results["first"] == (1, 0, 1)
    assert results["second"] == (0, 0, 0)
    assert db.scalar("select count(*) from staging.stg_market_data__daily_prices") == rows_before + 1
    build(db)  # the trading days and marts follow


def test_a_killed_build_leaves_whole_relations(changed_db: tuple[Database, Path], tmp_path: Path):
    """Kill dbt (and its server session) while staging applies a full rebuild: readers see
    the relations as they were, and the next build brings everything up to date."""
    db, _ = changed_db
    before = snapshot(db)
    proc = subprocess.Popen(
        [str(DBT), "build", "--full-refresh", "-s", "stg_market_data__daily_prices"],
        cwd=str(PROJECT_DIR),
        env=db.role_env("transformer"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    applying = (
        "select pid from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and query like %s"
    )
    deadline = time.monotonic() + 120
    pids: list[tuple[int]] = []
    while time.monotonic() < deadline and not pids:
        pids = db.query(applying, ("%stg_market_data__daily_prices__apply(%p_full => true%",))
        time.sleep(0.05)
    assert pids, "the apply never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db.query("select pg_terminate_backend(%s)", (pids[0][0],))
    while db.query(applying, ("%stg_market_data__daily_prices__apply(%",)):
        time.sleep(0.1)
    after = snapshot(db)
    for relation, frame in before.items():
        assert_frames_equal(after[relation], frame, relation)
    build(db)
    for relation, frame in snapshot(db).items():
        assert_frames_equal(frame, before[relation], relation)


@pytest.fixture
def compressed_db(tmp_path: Path) -> Iterator[Database]:
    db = create_database(tmp_path / "db")
    yield db
    drop_database(db)


@pytest.mark.community
def test_a_correction_in_a_compressed_chunk_reaches_the_marts(compressed_db: Database, tmp_path: Path):
    db = compressed_db
    files = tmp_path / "files"
    shutil.copytree(SAMPLE_DIR, files)
    load(db, files)
    build(db, "--vars", "{compress_after: '5 years'}")
    compressed = (
        "select count(*) from timescaledb_information.chunks where hypertable_name = %s and is_compressed"
    )
    assert db.scalar(compressed, ("stg_market_data__daily_prices",)) > 0
    assert db.scalar(compressed, ("int_daily_prices__trading_days",)) > 0
    change_close(files / "stocks" / f"{CORRECTED}.csv", CORRECTED_DATE, 2.0)
    load(db, files)
    build(db, "--vars", "{compress_after: '5 years'}")
    original = reference.daily_prices()
    before = original[(original.symbol == CORRECTED) & (original.trade_date == CORRECTED_DATE)].close.item()
    for relation in (
        "staging.stg_market_data__daily_prices",
        "intermediate.int_daily_prices__trading_days",
        "marts.fct_daily_prices",
    ):
        close = db.scalar(
            f"select close from {relation} where symbol = %s and trade_date = %s", (CORRECTED, CORRECTED_DATE)
        )
        assert close == pytest.approx(before * 2.0, rel=1e-12), relation
    monthly = db.scalar(
        "select avg_close from marts.fct_price_averages_monthly where symbol = %s and period_start = %s",
        (CORRECTED, CORRECTED_DATE[:8] + "01"),
    )
    expected = reference.period_averages("monthly", files)
    expected = expected[(expected.symbol == CORRECTED) & (expected.period_start == CORRECTED_DATE[:8] + "01")]
    assert monthly == pytest.approx(expected.avg_close.item(), rel=1e-9)
    # and the chunk the correction decompressed is compressed again
    partial = (
        "select count(*) from _timescaledb_catalog.chunk c join _timescaledb_catalog.hypertable h "
        "on h.id = c.hypertable_id where h.table_name = %s and c.status & 8 = 8"
    )
    assert db.scalar(partial, ("stg_market_data__daily_prices",)) == 0


@pytest.mark.one_pass
def test_a_build_does_not_wait_for_a_routine_running_beside_it(own_sample_db: Database):
    """The setup each incremental model runs at every build looks in the catalog before any
    DDL: a transaction holding the shared watermarks table (a routine of the feed in flight,
    another model's) does not hold the build up until it commits."""
    db = own_sample_db
    holder = db.connect()
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute(
                "update staging.incremental_watermarks set updated_at = updated_at "
                "where consumer = 'intermediate.int_daily_prices__trading_days'"
            )
            assert cur.rowcount == 1
        db.env["PGOPTIONS"] = "-c lock_timeout=10s"
        try:
            run = db.run(
                [
                    str(DBT),
                    "run",
                    "--select",
                    "int_daily_prices__symbol_firsts",
                    "int_daily_prices__symbol_spans",
                ],
                timeout=300,
                role="transformer",
            )
        finally:
            del db.env["PGOPTIONS"]
        assert run.returncode == 0, run.stdout[-3000:]
        assert "lock timeout" not in run.stdout
    finally:
        holder.rollback()
        holder.close()
