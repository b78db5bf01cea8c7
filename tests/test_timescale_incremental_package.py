"""The incremental engine's package on its own: its integration_tests project (every
materialization, the upstream_changes strategy, a strategy of the project's, the overrides, the
scoped tests) builds on a throwaway database, grows, and equals a full rebuild, on both editions.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from devtools.databases import Database
from devtools.project import DBT, PROJECT_DIR

pytestmark = pytest.mark.editions

INTEGRATION_TESTS = PROJECT_DIR / "packages" / "timescale_incremental" / "integration_tests"
DEPS_LOCK = Path(tempfile.gettempdir()) / "stock_analytics_integration_tests.lock"
MODELS = ("series_rows", "series_sums", "series_weekly", "series_monthly", "latest_sums", "symbol_counts")
ORDER = {
    "series_rows": "symbol, price_date",
    "series_sums": "symbol, price_date",
    "series_weekly": "symbol, period_start",
    "series_monthly": "symbol, period_start",
    "latest_sums": "symbol",
    "symbol_counts": "symbol",
}


def build(db: Database, work_dir: Path, *args: str, succeeds: bool = True) -> dict[str, dict]:
    """dbt build of the integration project as the database's owner; the run's results by node."""
    env = {
        **db.env,
        "DBT_PROFILES_DIR": str(INTEGRATION_TESTS),
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
    }
    # deps rewrites the project's dbt_packages/: one build at a time on this machine (make test
    # runs the apache pass alongside the suite)
    with DEPS_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for command in (["deps"], ["build", *args]):
            proc = subprocess.run(
                [str(DBT), *command],
                cwd=INTEGRATION_TESTS,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert (proc.returncode == 0) == (succeeds or command == ["deps"]), proc.stdout[-4000:]
    results = json.loads((work_dir / "target" / "run_results.json").read_text())["results"]
    # unique ids: model.<project>.<name>, test.<project>.<name>.<hash>
    return {result["unique_id"].split(".")[2]: result for result in results}


def snapshot(db: Database) -> dict[str, pd.DataFrame]:
    return {model: db.frame(f"select * from tsi.{model} order by {ORDER[model]}") for model in MODELS}


def assert_windows_are_the_last_rows(db: Database) -> None:
    """series_sums carries its last 2 prices and day numbers a symbol (config carried_windows)."""
    last_rows = db.query(
        """
        select symbol, max(price_date), array_agg(price order by price_date),
            array_agg(day_number order by price_date)
        from (
            select *, row_number() over (partition by symbol order by price_date desc) as back
            from tsi.series_sums
        ) as numbered
        where back <= 2
        group by symbol
        order by symbol
        """
    )
    carried = db.query(
        "select symbol, price_date, price, day_number from tsi.series_sums__windows order by symbol"
    )
    assert carried == last_rows


def add_prices(
    db: Database, symbols: list[str], first: str, last: str, negative_on: str | None = None
) -> None:
    db.query(
        """
        insert into tsi_source.prices (symbol, price_date, price)
        select symbol, price_date::date,
            case when symbol = 'A' and price_date::date = %(negative_on)s::date then -5
                else 10 + extract(day from price_date) end
        from unnest(%(symbols)s::text[]) as symbol,
            generate_series(%(first)s::date, %(last)s::date, interval '1 day') as price_date
        """,
        {"symbols": symbols, "first": first, "last": last, "negative_on": negative_on},
    )


def test_the_package_builds_grows_and_equals_a_full_rebuild(
    fresh_db: Database, tmp_path: Path, server_license
):
    db = fresh_db
    db.query("create schema tsi_source")
    db.query("create table tsi_source.prices (symbol text, price_date date, price float8)")
    add_prices(db, ["A", "B"], "2020-01-01", "2020-03-31", negative_on="2020-01-01")

    first = build(db, tmp_path / "first")
    # The first build changed everything: the scoped test sees A's negative price (a warning).
    assert first["non_negative_series_rows_price"]["failures"] == 1
    # A build with nothing new: the scoped tests read nothing they have seen pass (or warn).
    nothing_new = build(db, tmp_path / "nothing_new")
    assert nothing_new["non_negative_series_rows_price"]["failures"] == 0
    assert "pg_visible_in_snapshot" in nothing_new["non_negative_series_rows_price"]["compiled_code"]
    assert db.scalar("select count(*) from tsi.series_sums") == 2 * 91
    assert_windows_are_the_last_rows(db)

    # Only B grows: the scoped test reads B's new rows (and the rows before them), not A's.
    add_prices(db, ["B"], "2020-04-01", "2020-04-10")
    add_prices(db, ["C"], "2020-03-25", "2020-04-10")
    grown = build(db, tmp_path / "grown")
    assert grown["non_negative_series_rows_price"]["failures"] == 0
    assert db.scalar("select count(*) from tsi.series_rows where symbol = 'B'") == 101
    assert db.scalar("select count(*) from tsi.series_sums where symbol = 'C'") == 17
    # the 3-day average goes on from the stored days before the change
    assert db.scalar(
        "select avg_3 from tsi.series_sums where symbol = 'B' and price_date = '2020-04-02'"
    ) == pytest.approx((10 + 31 + 10 + 1 + 10 + 2) / 3)
    # B's windows went on with its new rows, C's were read from its rows
    assert_windows_are_the_last_rows(db)

    # A scoped call applies exactly the changes the transactions it names wrote, records them as
    # taken and leaves the watermark; the next unscoped call skips them and forgets them.
    add_prices(db, ["B"], "2020-04-11", "2020-04-11")
    add_prices(db, ["D"], "2020-04-01", "2020-04-05")
    watermark = "select change_id from tsi.incremental_watermarks where consumer = 'tsi.series_sums'"
    before = db.scalar(watermark)
    conn = db.connect()
    try:
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("select * from tsi.series_rows__apply()")
            cur.execute("select pg_current_xact_id()::text")
            (xid,) = cur.fetchone()
        conn.commit()
        with conn.cursor() as cur:
            cur.execute(
                "select symbols_changed from tsi.series_sums__apply(p_writer_xids => %s::xid8[])", ([xid],)
            )
            assert cur.fetchone() == (2,)
        conn.commit()
    finally:
        conn.close()
    assert db.scalar(watermark) == before
    assert db.scalar("select count(*) from tsi.series_sums where symbol = 'D'") == 5
    assert db.scalar("select count(*) from tsi.incremental_taken where consumer = 'tsi.series_sums'") == 2
    assert db.query("select symbols_changed from tsi.series_sums__apply()") == [(0,)]
    assert db.scalar(watermark) > before
    assert db.scalar("select count(*) from tsi.incremental_taken") == 0
    assert_windows_are_the_last_rows(db)
    build(db, tmp_path / "after_scoped")  # the models fed by series_sums catch up
    incremental = snapshot(db)

    # The routines are listed for callers outside dbt, with the strategy that made them.
    routines = dict(db.query("select relation_name, strategy from tsi.incremental_routines"))
    assert routines["tsi.series_rows"] == "append_rows"
    assert routines["tsi.series_sums"] == "upstream_changes"
    expected_form = "continuous_aggregate" if server_license == "timescale" else "period_table"
    assert routines["tsi.series_weekly"] == expected_form
    # months vary in width: TimescaleDB would refresh one by reading every later chunk
    assert routines["tsi.series_monthly"] == "period_table"

    db.query("update tsi.series_sums__windows set price_date = '1999-01-01'")  # read again by a rebuild
    rebuilt = build(db, tmp_path / "rebuilt", "--full-refresh")
    assert_windows_are_the_last_rows(db)
    assert rebuilt["non_negative_series_rows_price"]["failures"] == 1
    for model, frame in snapshot(db).items():
        pd.testing.assert_frame_equal(incremental[model], frame, check_exact=False, rtol=1e-12, obj=model)

    # A failing scoped test keeps failing on the next builds, new changes or none, until it
    # passes (or warns): only then does it move on.
    db.query("insert into tsi_source.prices (symbol, price_date, price) values ('B', '2020-04-12', -1)")
    as_error = ("--vars", "{series_rows_test_severity: error}")
    for attempt in ("failed", "failed_again"):
        failed = build(db, tmp_path / attempt, *as_error, succeeds=False)
        assert (
            failed["non_negative_series_rows_price"]["status"],
            failed["non_negative_series_rows_price"]["failures"],
        ) == (
            "fail",
            1,
        ), attempt
    warned = build(db, tmp_path / "warned")
    assert (
        warned["non_negative_series_rows_price"]["status"],
        warned["non_negative_series_rows_price"]["failures"],
    ) == (
        "warn",
        1,
    )
    assert build(db, tmp_path / "passed", *as_error)["non_negative_series_rows_price"]["status"] == "pass"
    recorded = db.scalar(
        "select count(*) from tsi.incremental_tests_passed where test_id like 'test.%%non_negative%%'"
    )
    assert recorded == 2  # both scoped tests
