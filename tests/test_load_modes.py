"""Load modes: append the new lines, merge by date (never shrinking a history), replace only when
asked; rejections stored once; the raw schema upgrades in place; and the loader's smaller
safety rules (header length, client encoding, missing packages)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import xxhash

from devtools.databases import Database, create_database, drop_database
from devtools.project import LOADER, PROJECT_DIR
from loader import schema
from tests.loader_support import HEADER, assert_accounting, price_rows, write

MIGRATION_1 = PROJECT_DIR / "loader" / "migrations" / "0001_raw_layer.sql"


def current_rows(db: Database, symbol: str) -> dict[str, tuple[str, str]]:
    """What staging would read for a symbol: per date, the newest live row's (close, adj_close)."""
    return {
        date: (close, adj_close)
        for date, close, adj_close in db.query(
            "select date, close, adj_close from raw.current_daily_prices where symbol = %s", (symbol,)
        )
    }


def statuses(db: Database) -> list[tuple[str, str | None]]:
    return db.query("select status, load_mode from raw.load_log order by load_id")


def test_the_daily_refresh_appends_only_the_new_line(fresh_db, tmp_path):
    day1 = write(tmp_path / "day1", "MSFT.csv", HEADER + price_rows(100))
    day2 = write(tmp_path / "day2", "MSFT.csv", HEADER + price_rows(101))  # one line longer
    assert fresh_db.run_loader(day1).returncode == 0
    proc, summary = fresh_db.load_summary(day2)
    assert proc.returncode == 0, proc.stderr
    assert summary["files_by_mode"] == {"append": 1}
    assert summary["rows_read"] == summary["rows_loaded"] == 1
    assert "modes: 1 append" in proc.stderr
    # The new row keeps its line number in the file: header, 100 rows, then line 102.
    assert fresh_db.query("select line_number from raw.daily_prices where load_id = 2") == [(102,)]
    assert (
        fresh_db.scalar("select append_offset_bytes from raw.load_log where load_id = 2")
        == day1.stat().st_size
    )
    assert fresh_db.scalar("select count(*) from raw.daily_prices") == 101
    assert len(current_rows(fresh_db, "MSFT")) == 101
    assert statuses(fresh_db) == [("loaded", "merge"), ("loaded", "append")]
    assert_accounting(fresh_db, summary)


def test_a_gzip_file_one_line_longer_is_appended(fresh_db, tmp_path):
    """A .csv.gz compressed again after the day's line was added is an append: its content
    (uncompressed) begins with the latest load's. The same content compressed differently is
    unchanged, and so is a file whose load was logged with the hash of its compressed bytes (as
    loaders before content hashing logged gzip files)."""
    day1 = write(tmp_path / "day1", "MSFT.csv.gz", HEADER + price_rows(100), compress=True)
    day2 = write(tmp_path / "day2", "MSFT.csv.gz", HEADER + price_rows(101), compress=True)
    assert fresh_db.run_loader(day1).returncode == 0
    proc, summary = fresh_db.load_summary(day2)
    assert proc.returncode == 0, proc.stderr
    assert summary["files_by_mode"] == {"append": 1}
    assert summary["rows_read"] == summary["rows_loaded"] == 1
    assert fresh_db.query("select line_number from raw.daily_prices where load_id = 2") == [(102,)]
    assert fresh_db.scalar("select append_offset_bytes from raw.load_log where load_id = 2") == len(
        HEADER + price_rows(100)
    )
    assert len(current_rows(fresh_db, "MSFT")) == 101

    recompressed = write(tmp_path / "again", "MSFT.csv.gz", b"")
    recompressed.write_bytes(gzip.compress(HEADER + price_rows(101), compresslevel=1, mtime=0))
    assert recompressed.read_bytes() != day2.read_bytes()
    proc, summary = fresh_db.load_summary(recompressed)
    assert proc.returncode == 0, proc.stderr
    assert summary["files_unchanged"] == 1

    fresh_db.query(
        "update raw.load_log set content_hash = %s where load_id = 2",
        (xxhash.xxh3_128(day2.read_bytes()).hexdigest(),),
    )
    proc, summary = fresh_db.load_summary(day2)
    assert summary["files_unchanged"] == 1
    assert statuses(fresh_db) == [("loaded", "merge"), ("loaded", "append")]
    assert_accounting(fresh_db, summary)


def test_appended_lines_are_checked_like_any_others(fresh_db, tmp_path):
    base = HEADER + price_rows(10)
    write(tmp_path / "a", "X.csv", base)
    fresh_db.run_loader(tmp_path / "a" / "X.csv")
    grown = base + b"2031-01-02,1,2,0.5,1.5,1.5\n" + b"2031-01-03,1,2,0.5,1.5,1.5,100\n"
    proc, summary = fresh_db.load_summary(write(tmp_path / "b", "X.csv", grown))
    assert proc.returncode == 2
    assert summary["files_by_mode"] == {"append": 1}
    assert (summary["rows_read"], summary["rows_loaded"], summary["rows_rejected"]) == (2, 1, 1)
    assert fresh_db.query("select line_number, reason_code from raw.load_rejects") == [(12, "field_count")]
    assert_accounting(fresh_db, summary)


def test_a_file_whose_earlier_version_ended_without_newline_is_merged_not_appended(fresh_db, tmp_path):
    rows = price_rows(5)
    write(tmp_path / "a", "Y.csv", HEADER + rows.rstrip(b"\n"))
    fresh_db.run_loader(tmp_path / "a" / "Y.csv")
    proc, summary = fresh_db.load_summary(write(tmp_path / "b", "Y.csv", HEADER + price_rows(6)))
    assert proc.returncode == 0, proc.stderr
    assert summary["files_by_mode"] == {"merge": 1}
    assert len(current_rows(fresh_db, "Y")) == 6


def test_a_short_file_never_erases_history(fresh_db, tmp_path):
    """Issue 13, item 2: the last 5 days of AAPL must not replace its full history."""
    history = price_rows(500)
    fresh_db.run_loader(write(tmp_path / "full", "AAPL.csv", HEADER + history))
    last_week = b"".join(line.replace(b",1", b",7", 1) for line in history.splitlines(keepends=True)[-5:])
    proc, summary = fresh_db.load_summary(write(tmp_path / "week", "AAPL.csv", HEADER + last_week))
    assert proc.returncode == 0, proc.stderr
    assert summary["files_by_mode"] == {"merge": 1} and summary["loads_superseded"] == 0
    rows = current_rows(fresh_db, "AAPL")
    assert len(rows) == 500  # nothing lost
    newest = {line.split(b",")[0].decode(): line for line in last_week.splitlines()}
    for date, line in newest.items():  # the short file's values win on its own dates
        assert rows[date] == (line.split(b",")[4].decode(), line.split(b",")[5].decode())
    assert statuses(fresh_db) == [("loaded", "merge"), ("loaded", "merge")]
    assert_accounting(fresh_db, summary)


@pytest.mark.editions
def test_a_redownloaded_history_supersedes_every_date_and_retires_the_old_copy(fresh_db, tmp_path):
    history = price_rows(300)
    readjusted = b"".join(  # Yahoo re-adjusts Adj Close after a dividend: every line changes
        line.rsplit(b",", 2)[0] + b",1.2345," + line.rsplit(b",", 1)[1]
        for line in history.splitlines(keepends=True)
    )
    fresh_db.run_loader(write(tmp_path / "a", "KO.csv", HEADER + history))
    proc, summary = fresh_db.load_summary(write(tmp_path / "b", "KO.csv", HEADER + readjusted))
    assert proc.returncode == 0, proc.stderr
    assert summary["files_by_mode"] == {"merge": 1} and summary["loads_superseded"] == 1
    assert {adj for _, adj in current_rows(fresh_db, "KO").values()} == {"1.2345"}
    assert statuses(fresh_db) == [("superseded", "merge"), ("loaded", "merge")]
    source_tests = fresh_db.dbt("test", "-s", "source:raw")  # the raw layer's documented values
    assert source_tests.returncode == 0, source_tests.stdout[-3000:]
    # The old copy stays auditable for the retention period ...
    assert fresh_db.scalar("select count(*) from raw.daily_prices where load_id = 1") == 300
    assert_accounting(fresh_db, summary)
    # ... and is purged once it is over (0 days: at the end of this run).
    proc, summary = fresh_db.load_summary(tmp_path / "b" / "KO.csv", "--keep-superseded", "0")
    assert summary["loads_purged"] == 1 and summary["files_unchanged"] == 1
    assert fresh_db.scalar("select count(*) from raw.daily_prices where load_id = 1") == 0
    assert fresh_db.scalar("select purged_at is not null from raw.load_log where load_id = 1")
    assert_accounting(fresh_db, summary)


def test_replace_is_explicit_and_says_what_it_removed(fresh_db, tmp_path):
    history = price_rows(500)
    fresh_db.run_loader(write(tmp_path / "full", "AAPL.csv", HEADER + history))
    lines = history.splitlines(keepends=True)
    proc, summary = fresh_db.load_summary(
        write(tmp_path / "week", "AAPL.csv", HEADER + b"".join(lines[-5:])), "--replace"
    )
    assert proc.returncode == 0, proc.stderr
    assert summary["files_by_mode"] == {"replace": 1}
    assert len(current_rows(fresh_db, "AAPL")) == 5
    removed = [line.split(b",")[0].decode() for line in lines[:-5]]
    assert summary["rows_removed"] == 495
    [replaced] = summary["replaced_histories"]
    assert (replaced["symbol"], replaced["rows_removed"]) == ("AAPL", 495)
    assert (replaced["removed_first_date"], replaced["removed_last_date"]) == (min(removed), max(removed))
    assert "AAPL lost 495 dates" in proc.stderr
    assert statuses(fresh_db) == [("superseded", "merge"), ("loaded", "replace")]
    assert_accounting(fresh_db, summary)


def test_a_rejected_replace_removes_nothing(fresh_db, tmp_path):
    fresh_db.run_loader(write(tmp_path / "a", "IBM.csv", HEADER + price_rows(20)))
    proc, _ = fresh_db.load_summary(
        write(tmp_path / "b", "IBM.csv", b"Date,Close\n2020-01-01,1\n"), "--replace"
    )
    assert proc.returncode == 2
    assert len(current_rows(fresh_db, "IBM")) == 20


def test_a_rejected_file_is_stored_once_however_often_it_is_seen(fresh_db, tmp_path):
    """Issue 13, item 4: a stray file in a cron'd folder must not grow the rejects table."""
    stray = write(tmp_path, "NOTES.csv", b"name,value\n" + b"a,1\n" * 50)
    first, summary = fresh_db.load_summary(stray)
    assert first.returncode == 2 and summary["files_already_rejected"] == 0
    for _ in range(2):
        again, summary = fresh_db.load_summary(stray)
        assert again.returncode == 2  # the problem is still there
        assert summary["files_rejected"] == summary["files_already_rejected"] == 1
        assert "rejected before with the same content" in summary["rejected_files"][0]["reason"]
    assert fresh_db.scalar("select count(*) from raw.load_log") == 1
    assert fresh_db.scalar("select count(*) from raw.load_rejects") == 50
    # A changed file is news: it is judged (and stored) again.
    write(tmp_path, "NOTES.csv", b"name,value\n" + b"a,1\n" * 51)
    fresh_db.load_summary(stray)
    assert fresh_db.scalar("select count(*) from raw.load_log") == 2


def test_an_unreadable_gzip_is_also_rejected_once(fresh_db, tmp_path):
    broken = write(tmp_path, "Z.csv.gz", HEADER + price_rows(2000), compress=True)
    broken.write_bytes(broken.read_bytes()[:-200])
    for _ in range(2):
        proc, summary = fresh_db.load_summary(broken)
        assert proc.returncode == 2
    assert summary["files_already_rejected"] == 1
    assert fresh_db.scalar("select count(*) from raw.load_log") == 1


def test_a_first_line_without_end_is_read_only_so_far(fresh_db, tmp_path):
    """Issue 13, item 7: a file without newlines is not read whole into memory or the log."""
    blob = write(tmp_path, "BLOB.csv", b"x" * (8 << 20))
    proc, summary = fresh_db.load_summary(blob)
    assert proc.returncode == 2
    error = fresh_db.scalar("select error from raw.load_log")
    assert "first line is longer than" in error and len(error) < 300
    assert summary["rows_read"] == 0


def test_names_keep_their_accents_in_a_latin1_database(tmp_path):
    """Issue 13, item 7: the loader declares its UTF-8, so the server converts instead of
    storing UTF-8 bytes as LATIN1 characters; a character LATIN1 lacks rejects the file, clearly."""
    db = create_database(tmp_path / "db", encoding="LATIN1")
    try:
        meta = (
            b"Nasdaq Traded,Symbol,Security Name,Listing Exchange,Market Category,ETF,"
            b"Round Lot Size,Test Issue,Financial Status,CQS Symbol,NASDAQ Symbol,NextShares\n"
            + "Y,NESN,Nestl\u00e9 S.A.,N,,N,100,N,,NESN,NESN,N\n".encode()
        )
        proc, _ = db.load_summary(write(tmp_path / "d", "symbols_valid_meta.csv", meta))
        assert proc.returncode == 0, proc.stderr
        assert db.scalar("select security_name from raw.symbols_meta") == "Nestl\u00e9 S.A."
        euro = HEADER + "2020-01-02,1,2,0.5,1.5,1.5,100\n2020-01-03,1,2,0.5,1.5,1.5,1\u20ac\n".encode()
        proc, summary = db.load_summary(write(tmp_path / "d", "EUR.csv", euro))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "encoding cannot hold a character" in summary["rejected_files"][0]["reason"]
        assert db.scalar("select count(*) from raw.daily_prices") == 0  # nothing half-stored
        # Beside a good file, in one group: the server refuses the group's rows, then each file
        # is loaded by itself, with its own outcome.
        good = write(tmp_path / "g", "GOOD.csv", HEADER + b"2020-01-02,1,2,0.5,1.5,1.5,100\n")
        yen = write(tmp_path / "g", "YEN.csv", HEADER + "2020-01-02,1,2,0.5,1.5,1.5,1\u20ac\n".encode())
        proc, summary = db.load_summary(tmp_path / "g", "--workers", "1")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert [f["path"] for f in summary["rejected_files"]] == [str(yen)]
        assert [f["path"] for f in summary["files"] if f["status"] == "loaded"] == [str(good)]
        assert db.scalar("select symbol from raw.current_daily_prices") == "GOOD"
    finally:
        drop_database(db)


def test_without_the_project_packages_the_loader_says_how_to_get_them(tmp_path):
    proc = subprocess.run(  # -S: no site-packages, as a system interpreter outside .venv
        [sys.executable, "-S", str(LOADER), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "is not installed" in proc.stderr and "make venv" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.editions
def test_a_release_0_1_database_upgrades_in_place_and_loses_nothing(fresh_db, tmp_path):
    """The schema and data the first release wrote (status 'replaced', no load modes) upgrade
    on the next load: every row stays, old loads keep their meaning, loading goes on."""
    with fresh_db.connect("loader") as conn, conn.cursor() as cur:
        cur.execute(MIGRATION_1.read_text())  # release 0.1's schema, exactly (no migrations table)
        cur.execute(
            """
            insert into raw.load_log (source_key, file_path, file_kind, symbol, asset_type,
                                      content_hash, file_size_bytes, status, rows_read, rows_loaded,
                                      started_at, finished_at, purged_at)
            values ('prices/OLD', '/x/OLD.csv', 'prices', 'OLD', 'stock', 'h1', 10, 'replaced', 2, 2,
                    now(), now(), now()),
                   ('prices/OLD', '/x/OLD.csv', 'prices', 'OLD', 'stock', 'h2', 20, 'loaded', 3, 3,
                    now(), now(), null);
            insert into raw.daily_prices (load_id, line_number, date, open, high, low, close,
                                          adj_close, volume)
            select 2, n + 1, '2019-01-0' || n, '1', '2', '0.5', '1.5', '1.5', '100'
              from generate_series(1, 3) n;
            """
        )
    path = write(tmp_path / "stocks", "NEW.csv", HEADER + price_rows(4))
    proc, summary = fresh_db.load_summary(path)
    assert proc.returncode == 0, proc.stderr
    # every migration after the first is applied now, in order
    later = [migration.version for migration in schema.migrations()][1:]
    assert all(f"applying migration {version}" in proc.stderr for version in later)
    assert "applying migration 1" not in proc.stderr
    assert fresh_db.query("select version from raw.schema_migrations order by 1") == [
        (version,) for version in [1, *later]
    ]
    assert fresh_db.query("select load_id, status, load_mode from raw.load_log order by load_id") == [
        (1, "superseded", "replace"),
        (2, "loaded", "replace"),
        (3, "loaded", "merge"),
    ]
    assert len(current_rows(fresh_db, "OLD")) == 3 and len(current_rows(fresh_db, "NEW")) == 4
    assert_accounting(fresh_db, summary)
    # and the dbt layer reads the upgraded raw layer as before
    # (the calendar seed first: staging's price guard counts missed sessions on it)
    assert fresh_db.dbt("seed").returncode == 0
    built = fresh_db.dbt("run", "-s", "+stg_market_data__daily_prices")
    assert built.returncode == 0, built.stdout[-3000:]
    assert fresh_db.scalar("select count(*) from staging.stg_market_data__daily_prices") == 7


@pytest.mark.parametrize("mode_args", [(), ("--replace",)])
def test_accounting_holds_with_bad_lines_in_every_mode(fresh_db, tmp_path, mode_args):
    rows = price_rows(30)
    fresh_db.run_loader(write(tmp_path / "a", "Q.csv", HEADER + rows))
    grown = (
        HEADER + rows + b"2031-05-05,1,2\n" + b"\xff\xfe,1,2,3,4,5,6\n" + b"2031-05-06,1,2,0.5,1.5,1.5,9\n"
    )
    proc, summary = fresh_db.load_summary(write(tmp_path / "b", "Q.csv", grown), *mode_args)
    assert proc.returncode == 2
    assert summary["rows_rejected"] == 2
    assert_accounting(fresh_db, summary)
    assert len(current_rows(fresh_db, "Q")) == 31


def test_the_summary_lists_each_file_with_its_mode(fresh_db, tmp_path):
    fresh_db.run_loader(write(tmp_path / "a", "M.csv", HEADER + price_rows(3)))
    write(tmp_path / "b", "M.csv", HEADER + price_rows(4))
    write(tmp_path / "b", "N.csv", HEADER + price_rows(2))
    _, summary = fresh_db.load_summary(tmp_path / "b")
    modes = {Path(f["path"]).name: (f["status"], f["mode"]) for f in summary["files"]}
    assert modes == {"M.csv": ("loaded", "append"), "N.csv": ("loaded", "merge")}
