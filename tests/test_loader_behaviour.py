"""Re-runs, replacement, crashes and concurrency: never a duplicate, never a half-loaded file."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devtools.databases import Database
from devtools.project import LOADER, PROJECT_DIR, SAMPLE_DIR
from devtools.sample import sample_data_lines
from loader import database, runner, schema
from loader.discovery import discover
from tests.loader_support import HEADER, assert_accounting, price_rows, write

SUMMARY_KEYS = {
    "files_seen",
    "files_loaded",
    "files_unchanged",
    "files_rejected",
    "rows_read",
    "rows_loaded",
    "rows_rejected",
}


def start_loader(db: Database, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(LOADER), *map(str, args)],
        env=db.role_env("loader"),
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(interval)


def committed_loads(db: Database) -> int:
    if db.scalar("select to_regclass('raw.load_log')") is None:  # the loader has not made it yet
        return 0
    return db.scalar("select count(*) from raw.load_log where status = 'loaded'")


def test_sample_loads_with_asset_types_from_folders_and_summary_keys(fresh_db):
    proc, summary = fresh_db.load_summary(SAMPLE_DIR)
    assert proc.returncode == 0, proc.stderr
    assert summary.keys() >= SUMMARY_KEYS
    assert (summary["files_seen"], summary["files_loaded"], summary["rows_rejected"]) == (25, 25, 0)
    assert summary["rows_loaded"] == sum(sample_data_lines().values()) + 2642
    assert_accounting(fresh_db, summary)
    types = dict(fresh_db.query("select symbol, asset_type from raw.load_log where file_kind = 'prices'"))
    assert types["AAPL"] == "stock" and types["AGG"] == "etf"
    assert fresh_db.scalar("select asset_type from raw.load_log where file_kind = 'symbols'") is None


def test_corrected_history_supersedes_values_and_moving_the_folder_changes_nothing(fresh_db, tmp_path):
    rows = price_rows(10)
    corrected = rows.replace(b",1005\n", b",999999\n")
    write(tmp_path / "a", "IBM.csv", HEADER + rows)
    fresh_db.run_loader(tmp_path / "a" / "IBM.csv")
    write(tmp_path / "b", "IBM.csv", HEADER + corrected)
    proc, _ = fresh_db.load_summary(tmp_path / "b" / "IBM.csv")
    assert proc.returncode == 0
    assert fresh_db.scalar("select count(*) from raw.daily_prices where volume = '999999'") == 1
    shutil.copytree(tmp_path / "b", tmp_path / "moved")
    proc, summary = fresh_db.load_summary(tmp_path / "moved" / "IBM.csv")
    assert summary["files_unchanged"] == 1 and summary["rows_loaded"] == 0


def test_symbol_and_asset_type_options_override_the_file_name(fresh_db, tmp_path):
    path = write(tmp_path, "download (1).csv", HEADER + price_rows(3))
    proc, _ = fresh_db.load_summary(path, "--symbol", "TSLA", "--asset-type", "stock")
    assert proc.returncode == 0, proc.stderr
    assert fresh_db.query("select distinct symbol from raw.current_daily_prices") == [("TSLA",)]
    assert fresh_db.scalar("select asset_type from raw.load_log") == "stock"
    both = fresh_db.run_loader(path, SAMPLE_DIR / "stocks" / "A.csv", "--symbol", "X")
    assert both.returncode == 1 and "--symbol names the symbol of one price file" in both.stderr


def test_dry_run_counts_like_a_load_and_writes_nothing(fresh_db, tmp_path):
    write(tmp_path, "A.csv", HEADER + price_rows(20) + b"2021-13-01,1,2\n")
    write(tmp_path, "B.csv", b"")
    proc, summary = fresh_db.load_summary("--dry-run", tmp_path)
    assert proc.returncode == 2
    assert (summary["rows_read"], summary["rows_loaded"], summary["rows_rejected"]) == (21, 20, 1)
    assert summary["files_rejected"] == 1 and summary["dry_run"] is True
    assert "would load" in proc.stderr
    assert fresh_db.scalar("select to_regclass('raw.load_log')") is None


def test_help_explains_paths_reruns_exit_codes_and_connection(fresh_db):
    proc = fresh_db.run_loader("--help")
    assert proc.returncode == 0
    for phrase in (
        "symbols_valid_meta.csv",
        "--dry-run",
        "--summary-json",
        "--workers",
        "PGHOST",
        "raw.load_rejects",
        "unchanged",
        "exit codes",
    ):
        assert phrase.lower() in proc.stdout.lower(), phrase


def test_a_concurrent_reader_sees_the_old_rows_or_the_new_never_half(fresh_db, tmp_path):
    write(tmp_path / "v1", "BIG.csv", HEADER + price_rows(1_000))
    write(tmp_path / "v2", "BIG.csv", HEADER + price_rows(300_000))
    assert fresh_db.run_loader(tmp_path / "v1" / "BIG.csv").returncode == 0
    loader = start_loader(fresh_db, tmp_path / "v2" / "BIG.csv")
    # What staging reads: the rows of each symbol's current load.
    current_rows = "select count(*) from raw.current_daily_prices"
    seen = set()
    while loader.poll() is None:
        seen.add(fresh_db.scalar(current_rows))
    assert loader.returncode == 0, loader.stderr.read()
    seen.add(fresh_db.scalar(current_rows))
    assert seen <= {1_000, 300_000} and 300_000 in seen
    # v2 begins with v1's bytes: an append, so raw holds each row once.
    assert fresh_db.scalar("select count(*) from raw.daily_prices") == 300_000


def test_killing_the_loader_mid_run_then_rerunning_gives_exactly_a_clean_load(fresh_db, tmp_path):
    expected = {}
    for i in range(24):
        n = 15_000 + i * 500
        write(tmp_path / "stocks", f"S{i:02d}.csv", HEADER + price_rows(n))
        expected[f"S{i:02d}"] = n
    loader = start_loader(fresh_db, tmp_path, "--workers", "2")
    wait_until(lambda: committed_loads(fresh_db) >= 3)
    os.killpg(loader.pid, signal.SIGKILL)
    loader.wait()
    committed = fresh_db.scalar("select count(*) from raw.load_log where status = 'loaded'")
    assert 3 <= committed < 24, "the kill should land mid-run"
    assert_accounting(fresh_db, {"rows_read": 0, "rows_loaded": 0, "rows_rejected": 0})  # whole files only

    proc, summary = fresh_db.load_summary(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert summary["files_unchanged"] == committed
    assert (
        dict(fresh_db.query("select symbol, count(*) from raw.current_daily_prices group by symbol"))
        == expected
    )
    assert (
        fresh_db.scalar(
            "select count(*) from (select symbol, line_number from raw.current_daily_prices "
            "group by 1, 2 having count(*) > 1) d"
        )
        == 0
    )


def test_the_database_going_away_mid_load_stops_cleanly_and_a_rerun_finishes(fresh_db, tmp_path):
    path = write(tmp_path, "LONG.csv", HEADER + price_rows(600_000))
    loader = start_loader(fresh_db, path, "--workers", "1")
    wait_until(
        lambda: (
            fresh_db.scalar(
                "select count(*) from pg_stat_activity where datname = current_database() "
                "and application_name = 'stock_analytics loader' and query ilike 'copy%%'"
            )
            == 1
        )
    )
    fresh_db.query(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
        "and application_name = 'stock_analytics loader'"
    )
    _, stderr = loader.communicate(timeout=60)
    assert loader.returncode == 1
    assert "database went away while loading" in stderr and "Re-run the loader" in stderr
    assert "Traceback" not in stderr
    assert fresh_db.scalar("select count(*) from raw.daily_prices") == 0

    proc, summary = fresh_db.load_summary(path)
    assert proc.returncode == 0, proc.stderr
    assert summary["rows_loaded"] == 600_000
    assert_accounting(fresh_db, summary)


def test_two_loaders_at_once_on_the_same_files_load_each_row_once(fresh_db):
    first = start_loader(fresh_db, SAMPLE_DIR)
    second = start_loader(fresh_db, SAMPLE_DIR)
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    assert fresh_db.scalar("select count(*) from raw.daily_prices") == sum(sample_data_lines().values())
    assert fresh_db.scalar("select count(*) from raw.load_log where status = 'loaded'") == 25


def test_summary_json_goes_where_asked_even_into_a_new_folder(fresh_db, tmp_path):
    target = tmp_path / "reports" / "nightly" / "summary.json"
    proc = fresh_db.run_loader(SAMPLE_DIR / "stocks" / "ABNB.csv", "--summary-json", target)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(target.read_text())["rows_loaded"] == 32


def test_a_table_autovacuum_is_on_is_not_waited_for_and_its_vacuum_not_cancelled(fresh_db, tmp_path):
    """The housekeeping's BRIN summary takes the lock a vacuum holds: waiting for it would
    cancel autovacuum after deadlock_timeout at every run. A session holding that lock stands
    in for autovacuum here (it is not cancelled, so a loader that waited would hang)."""
    write(tmp_path / "v1", "BIG.csv", HEADER + price_rows(1_000))
    write(tmp_path / "v2", "BIG.csv", HEADER + price_rows(1_010))
    assert fresh_db.run_loader(tmp_path / "v1" / "BIG.csv").returncode == 0
    vacuum = fresh_db.connect("loader")
    vacuum.autocommit = False
    try:
        with vacuum.cursor() as cur:
            cur.execute("lock table raw.daily_prices in share update exclusive mode")
        proc, summary = fresh_db.load_summary(tmp_path / "v2" / "BIG.csv")
    finally:
        vacuum.rollback()
        vacuum.close()
    assert proc.returncode == 0, proc.stderr
    assert summary["files_by_mode"] == {"append": 1} and summary["rows_loaded"] == 10
    assert fresh_db.scalar("select count(*) from raw.current_daily_prices") == 1_010
    assert_accounting(fresh_db, summary)


def test_a_raw_table_is_analyzed_when_a_run_changes_as_much_as_autovacuum_waits_for(fresh_db, tmp_path):
    """A raw table is analyzed when it never was, or when the run wrote more rows to it than
    autovacuum_analyze_threshold + autovacuum_analyze_scale_factor x its rows."""
    analyze_counts = (
        "select relname, analyze_count from pg_stat_user_tables"
        " where relid in ('raw.daily_prices'::regclass, 'raw.load_log'::regclass)"
    )
    base_threshold, scale_factor = fresh_db.query(
        "select current_setting('autovacuum_analyze_threshold')::int,"
        " current_setting('autovacuum_analyze_scale_factor')::float8"
    )[0]
    # Autovacuum may update the table's row estimate between the runs (2,000 or 2,010 rows):
    # the second run stays below the threshold and the third above it at either.
    below, above = base_threshold // 5, 2 * int(base_threshold + scale_factor * 2_010)
    steps = [2_000, 2_000 + below, 2_000 + below + above]
    for n in steps:
        write(tmp_path / str(n), "BIG.csv", HEADER + price_rows(n))
    counts = []
    for before, n in zip([0, *steps], steps, strict=False):
        proc, summary = fresh_db.load_summary(tmp_path / str(n) / "BIG.csv")
        assert proc.returncode == 0, proc.stderr
        assert summary["rows_loaded"] == n - before  # each file appends to the one before
        counts.append(dict(fresh_db.query(analyze_counts)))
    # The first load: neither table analyzed before. The second wrote fewer price rows than
    # autovacuum waits for (the statistics still describe the table); the third more. Each
    # wrote one row to the load log.
    assert [c["daily_prices"] for c in counts] == [1, 1, 2]
    assert [c["load_log"] for c in counts] == [1, 1, 1]


def test_files_are_committed_many_to_a_transaction_each_whole_with_its_log_row(fresh_db):
    """A daily refresh is thousands of files of a new line each: they share transactions (a
    round trip and a commit a file were most of its time), and each file stays whole, its rows
    committed with its log row."""
    proc, summary = fresh_db.load_summary(SAMPLE_DIR, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert summary["files_loaded"] == 25
    assert fresh_db.scalar("select count(distinct writer_xid) from raw.load_log") < 25
    # writer_xid: the transaction that logged the load (xmin, without the epoch, on its rows).
    assert (
        fresh_db.scalar(
            "select count(*) from raw.daily_prices as price"
            " inner join raw.load_log as load using (load_id)"
            " where price.xmin::text <> (load.writer_xid::text::bigint % 4294967296)::text"
        )
        == 0
    )
    assert_accounting(fresh_db, summary)


def test_a_group_gives_each_file_its_own_outcome_and_streams_a_long_one_alone(
    fresh_db, tmp_path, monkeypatch
):
    """One group, every outcome a file can have: new, appended, unchanged, rejected whole,
    unreadable, a row rejected; a file with more new bytes than a group holds is streamed in a
    transaction of its own. Run in this process, with a group's buffer of 4 KB."""
    for name, value in fresh_db.role_env("loader").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(database, "GROUP_BUFFER_BYTES", 4_096)
    folder = tmp_path / "stocks"
    write(folder, "SAME.csv", HEADER + price_rows(5))
    write(folder, "GROW.csv", HEADER + price_rows(5))
    conn = database.connect()
    try:
        schema.upgrade(conn)
        first = database.load_sources(conn, discover([str(folder)]))
        assert [r.status for r in first] == ["loaded", "loaded"]
        write(folder, "GROW.csv", HEADER + price_rows(7))
        write(folder, "LONG.csv", HEADER + price_rows(200))  # 200 lines: about 10 KB
        write(folder, "NEW.csv", HEADER + price_rows(3))
        write(folder, "NOHEAD.csv", price_rows(2))
        (folder / "TRUNC.csv.gz").write_bytes(gzip.compress(HEADER + price_rows(50))[:-20])
        write(folder, "ONEBAD.csv", HEADER + price_rows(2) + b"2021-13-45,1,2\n")
        sources = sorted(discover([str(folder)]), key=lambda s: str(s.symbol))
        results = {Path(r.path).name: r for r in database.load_sources(conn, sources)}
    finally:
        conn.close()
    assert {name: (r.status, r.mode, r.rows_loaded, r.rows_rejected) for name, r in results.items()} == {
        "GROW.csv": ("loaded", "append", 2, 0),
        "LONG.csv": ("loaded", "merge", 200, 0),
        "NEW.csv": ("loaded", "merge", 3, 0),
        "NOHEAD.csv": ("rejected", "merge", 0, 2),  # its lines kept in the rejects
        "ONEBAD.csv": ("loaded", "merge", 2, 1),
        "SAME.csv": ("unchanged", None, 0, 0),
        "TRUNC.csv.gz": ("rejected", None, 0, 0),
    }
    assert "cannot read the file" in str(results["TRUNC.csv.gz"].reason)
    # GROW before LONG, LONG alone, the rest after it: three transactions for this run.
    xids = dict(fresh_db.query("select symbol, writer_xid::text from raw.load_log where load_id > 2"))
    assert xids["GROW"] != xids["LONG"] != xids["NEW"]
    assert xids["NEW"] == xids["NOHEAD"] == xids["ONEBAD"] == xids["TRUNC"]
    assert dict(fresh_db.query("select symbol, count(*) from raw.current_daily_prices group by 1")) == {
        "GROW": 7,
        "LONG": 200,
        "NEW": 3,
        "ONEBAD": 2,
        "SAME": 5,
    }
    summary = {"rows_read": 0, "rows_loaded": 0, "rows_rejected": 0}
    assert_accounting(fresh_db, summary)


def test_results_come_as_each_group_finishes_not_all_at_the_end(fresh_db, tmp_path, monkeypatch):
    """The progress moves while the workers load: a group's results are taken as it ends. Here
    another session holds one symbol's lock, so its group cannot end; the others' results come
    first, and that group loads once the lock is let go."""
    for name, value in fresh_db.role_env("loader").items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "stocks"
    for symbol in [*(f"S{i}" for i in range(8)), "ZZZ"]:
        write(folder, f"{symbol}.csv", HEADER + price_rows(3))
    holder = fresh_db.connect("loader")
    try:
        schema.upgrade(holder)
        holder.autocommit = True
        with holder.cursor() as cur:
            cur.execute("select pg_advisory_lock(hashtextextended('prices/ZZZ', 0))")
        sources = sorted(discover([str(folder)]), key=lambda s: str(s.symbol))
        results = runner._results_in_pool(sources, workers=2, dry_run=False, replace=False)
        with ThreadPoolExecutor(max_workers=1) as thread:
            first = thread.submit(next, results)
            try:
                assert first.result(timeout=60).status == "loaded"
            finally:
                holder.close()  # lets the lock go
            rest = list(results)
    finally:
        holder.close()
    assert first.result().path != str(folder / "ZZZ.csv")
    assert sorted(Path(r.path).stem for r in [first.result(), *rest]) == [*(f"S{i}" for i in range(8)), "ZZZ"]
    assert fresh_db.scalar("select count(*) from raw.current_daily_prices") == 27
