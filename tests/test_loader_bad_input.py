"""Every kind of bad input the loader meets: loaded, rejected with a reason, or stopped with a
clear message, and in every case the accounting adds up."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from devtools.databases import Database
from tests.loader_support import HEADER, assert_accounting, price_rows, rejects, write

GOOD = b"2021-01-04,10.0,11.0,9.5,10.5,10.4,1000\n"


def load(db: Database, *paths: Path | str, expect_exit: int) -> dict:
    proc, summary = db.load_summary(*paths)
    assert proc.returncode == expect_exit, proc.stderr
    assert "Traceback" not in proc.stderr
    assert_accounting(db, summary)
    return summary


def file_status(db: Database) -> list[tuple[str, str | None]]:
    return db.query("select status, error from raw.load_log order by load_id")


# ---- whole-file problems ----------------------------------------------------------------


def test_missing_header_rejects_the_file_and_keeps_every_line_as_a_reject(fresh_db, tmp_path):
    path = write(tmp_path, "MISS.csv", price_rows(3))
    summary = load(fresh_db, path, expect_exit=2)
    assert summary["files_rejected"] == 1 and summary["rows_rejected"] == 3 and summary["rows_loaded"] == 0
    assert [code for _, code, _ in rejects(fresh_db)] == ["missing_header"] * 3
    assert [n for n, _, _ in rejects(fresh_db)] == [1, 2, 3]  # line 1 is data here
    assert "no header line" in file_status(fresh_db)[0][1]


def test_wrong_header_rejects_the_file_with_the_header_it_found(fresh_db, tmp_path):
    path = write(
        tmp_path, "WRONG.csv", b"Date,Open,High,Low,Close,Volume\n" + b"2021-01-04,1,2,0.5,1.5,100\n"
    )
    summary = load(fresh_db, path, expect_exit=2)
    assert summary["files_rejected"] == 1 and summary["rows_rejected"] == 1
    status, error = file_status(fresh_db)[0]
    assert status == "rejected"
    assert "header is 'Date,Open,High,Low,Close,Volume'" in error and "Adj Close" in error
    assert fresh_db.scalar("select count(*) from raw.daily_prices") == 0


def test_empty_file_is_rejected(fresh_db, tmp_path):
    summary = load(fresh_db, write(tmp_path, "EMPTY.csv", b""), expect_exit=2)
    assert summary["files_rejected"] == 1 and summary["rows_read"] == 0
    assert "empty" in file_status(fresh_db)[0][1]


def test_header_only_file_is_rejected_and_does_not_wipe_the_symbols_rows(fresh_db, tmp_path):
    good = write(tmp_path / "v1", "KEEP.csv", HEADER + price_rows(5))
    load(fresh_db, good, expect_exit=0)
    header_only = write(tmp_path / "v2", "KEEP.csv", HEADER + b"\n")
    summary = load(fresh_db, header_only, expect_exit=2)
    assert summary["files_rejected"] == 1 and summary["rows_read"] == 0
    assert "no data rows" in file_status(fresh_db)[-1][1]
    assert fresh_db.scalar("select count(*) from raw.current_daily_prices where symbol = 'KEEP'") == 5


def test_binary_file_named_csv_is_rejected(fresh_db, tmp_path):
    path = write(tmp_path, "PIC.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    summary = load(fresh_db, path, expect_exit=2)
    assert summary["files_rejected"] == 1
    assert "binary" in file_status(fresh_db)[0][1]


def test_corrupt_gzip_is_rejected_with_the_read_error(fresh_db, tmp_path):
    blob = gzip.compress(HEADER + price_rows(2000))
    path = write(tmp_path, "TRUNC.csv.gz", blob[: len(blob) // 2])
    summary = load(fresh_db, path, expect_exit=2)
    assert summary["files_rejected"] == 1
    assert "cannot read the file" in file_status(fresh_db)[0][1]
    assert fresh_db.scalar("select count(*) from raw.daily_prices") == 0  # nothing half-loaded


# ---- row problems: the row is rejected, the rest of the file loads ---------------------


def test_rows_with_extra_or_missing_columns_are_rejected_one_by_one(fresh_db, tmp_path):
    content = (
        HEADER + GOOD + b"2021-01-05,1,2,3,4,5,6,7\n" + b"2021-01-06,1,2,3\n" + GOOD.replace(b"04", b"07")
    )
    summary = load(fresh_db, write(tmp_path, "COLS.csv", content), expect_exit=2)
    assert (summary["rows_read"], summary["rows_loaded"], summary["rows_rejected"]) == (4, 2, 2)
    assert [(n, code) for n, code, _ in rejects(fresh_db)] == [(3, "field_count"), (4, "field_count")]
    reasons = [r[0] for r in fresh_db.query("select reason from raw.load_rejects order by line_number")]
    assert reasons == ["expected 7 fields, found 8", "expected 7 fields, found 4"]


def test_truncated_last_line_without_newline_is_rejected_as_truncated(fresh_db, tmp_path):
    content = HEADER + GOOD + b"2021-01-05,10.0,11"
    summary = load(fresh_db, write(tmp_path, "CUT.csv", content), expect_exit=2)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (1, 1)
    assert rejects(fresh_db) == [(3, "truncated_line", "2021-01-05,10.0,11")]


def test_complete_last_line_without_newline_loads(fresh_db, tmp_path):
    summary = load(fresh_db, write(tmp_path, "NONL.csv", HEADER + GOOD.rstrip(b"\n")), expect_exit=0)
    assert summary["rows_loaded"] == 1
    assert fresh_db.scalar("select volume from raw.daily_prices") == "1000"


def test_non_utf8_bytes_reject_only_that_row_and_keep_its_bytes_visible(fresh_db, tmp_path):
    content = HEADER + GOOD + b"2021-01-05,10.0,11.0,9.5,10\xe9,10.4,1000\n"
    summary = load(fresh_db, write(tmp_path, "LATIN.csv", content), expect_exit=2)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (1, 1)
    [(line, code, raw)] = rejects(fresh_db)
    assert (line, code) == (3, "encoding")
    assert "10\\xe9" in raw


def test_nul_byte_inside_the_file_rejects_that_row(fresh_db, tmp_path):
    content = HEADER + price_rows(400) + b"2021-01-05,10.0\x00,11.0,9.5,10,10.4,1000\n"
    summary = load(fresh_db, write(tmp_path, "NUL.csv", content), expect_exit=2)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (400, 1)
    assert rejects(fresh_db)[0][1] == "nul_byte"


def test_repeated_header_inside_a_file_is_rejected(fresh_db, tmp_path):
    content = HEADER + GOOD + HEADER + GOOD.replace(b"04", b"05")
    summary = load(fresh_db, write(tmp_path, "TWICE.csv", content), expect_exit=2)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (2, 1)
    assert rejects(fresh_db)[0][:2] == (3, "repeated_header")


# ---- odd but parseable: loaded as they came (staging and the dbt tests judge them) -------


@pytest.mark.parametrize(
    ("label", "line", "column", "stored"),
    [
        ("date only (BAC 1995-05-29)", b"1995-05-29,,,,,,\n", "open", None),
        ("non-numeric price", b"2021-01-04,abc,11,9,10,10,100\n", "open", "abc"),
        ("NaN", b"2021-01-04,NaN,11,9,10,10,100\n", "open", "NaN"),
        ("inf", b"2021-01-04,10,inf,9,10,10,100\n", "high", "inf"),
        ("negative volume", b"2021-01-04,10,11,9,10,10,-100\n", "volume", "-100"),
        ("M/D/YYYY date", b"1/4/2021,10,11,9,10,10,100\n", "date", "1/4/2021"),
        ("High < Low", b"2021-01-04,10,9,11,10,10,100\n", "high", "9"),
        ("quoted fields", b'"2021-01-04","10","11","9","10","10","100"\n', "date", "2021-01-04"),
    ],
)
def test_odd_but_parseable_rows_are_loaded_as_they_came(fresh_db, tmp_path, label, line, column, stored):
    summary = load(fresh_db, write(tmp_path, "ODD.csv", HEADER + line), expect_exit=0)
    assert summary["rows_loaded"] == 1, label
    assert fresh_db.scalar(f"select {column} from raw.daily_prices") == stored


def test_crlf_line_endings_leave_no_carriage_returns(fresh_db, tmp_path):
    content = (HEADER + price_rows(3)).replace(b"\n", b"\r\n")
    summary = load(fresh_db, write(tmp_path, "CRLF.csv", content), expect_exit=0)
    assert summary["rows_loaded"] == 3
    assert fresh_db.scalar("select count(*) from raw.daily_prices where volume like '%' || chr(13)") == 0


def test_utf8_bom_before_the_header_is_accepted(fresh_db, tmp_path):
    summary = load(fresh_db, write(tmp_path, "BOM.csv", b"\xef\xbb\xbf" + HEADER + GOOD), expect_exit=0)
    assert summary["rows_loaded"] == 1
    assert fresh_db.scalar("select date from raw.daily_prices") == "2021-01-04"


def test_duplicate_dates_within_a_file_are_both_kept_with_their_line_numbers(fresh_db, tmp_path):
    content = HEADER + GOOD + GOOD.replace(b"10.5", b"10.7")
    load(fresh_db, write(tmp_path, "DUP.csv", content), expect_exit=0)
    assert fresh_db.query("select line_number, close from raw.daily_prices order by line_number") == [
        (2, "10.5"),
        (3, "10.7"),
    ]


def test_blank_lines_are_counted_apart_and_not_as_rows(fresh_db, tmp_path):
    content = HEADER + GOOD + b"\n\r\n" + GOOD.replace(b"04", b"05") + b"\n"
    summary = load(fresh_db, write(tmp_path, "GAPS.csv", content), expect_exit=0)
    assert (summary["rows_read"], summary["rows_loaded"], summary["blank_lines"]) == (2, 2, 3)
    assert [n for (n,) in fresh_db.query("select line_number from raw.daily_prices order by 1")] == [2, 5]


def test_gzip_file_loads_like_the_plain_one(fresh_db, tmp_path):
    summary = load(
        fresh_db, write(tmp_path, "ZIP.csv.gz", HEADER + price_rows(50), compress=True), expect_exit=0
    )
    assert summary["rows_loaded"] == 50
    assert fresh_db.query("select distinct symbol from raw.current_daily_prices") == [("ZIP",)]


@pytest.mark.parametrize(
    "name", ["BRK B.csv", "O'NEIL.csv", 'QU"OTE.csv', "X;DROP TABLE raw.load_log;--.csv"]
)
def test_odd_file_names_are_data_never_sql(fresh_db, tmp_path, name):
    summary = load(fresh_db, write(tmp_path, name, HEADER + GOOD), expect_exit=0)
    assert summary["rows_loaded"] == 1
    assert fresh_db.query("select symbol from raw.current_daily_prices") == [(name.removesuffix(".csv"),)]
    assert fresh_db.scalar("select count(*) from raw.load_log") == 1


# ---- could not run: exit 1, one clear line, nothing written ----------------------------


def test_a_path_that_does_not_exist_stops_with_a_clear_message(fresh_db, tmp_path):
    proc = fresh_db.run_loader(tmp_path / "nope")
    assert proc.returncode == 1
    assert "no such file or directory" in proc.stderr and "Traceback" not in proc.stderr


def test_a_directory_without_csvs_stops_with_a_clear_message(fresh_db, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    proc = fresh_db.run_loader(tmp_path)
    assert proc.returncode == 1
    assert "no .csv or .csv.gz files" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_database_stops_with_a_clear_message(fresh_db, tmp_path):
    path = write(tmp_path, "OK.csv", HEADER + GOOD)
    real_port = fresh_db.env["PGPORT"]
    fresh_db.env["PGPORT"] = "1"  # nothing listens there
    try:
        proc = fresh_db.run_loader(path)
    finally:
        fresh_db.env["PGPORT"] = real_port
    assert proc.returncode == 1
    assert "cannot connect to the database" in proc.stderr and "make db-up" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_overlong_line_is_rejected_without_reading_it_into_memory(fresh_db, tmp_path):
    content = HEADER + GOOD + b"2021-01-05," + b"9" * (3 << 20) + b"\n" + GOOD.replace(b"04", b"06")
    summary = load(fresh_db, write(tmp_path, "HUGE.csv", content), expect_exit=2)
    assert (summary["rows_read"], summary["rows_loaded"], summary["rows_rejected"]) == (3, 2, 1)
    [(line, code, raw)] = rejects(fresh_db)
    assert (line, code) == (3, "line_too_long") and len(raw) < 300
    assert [n for (n,) in fresh_db.query("select line_number from raw.daily_prices order by 1")] == [2, 4]


def test_a_stray_carriage_return_inside_a_line_rejects_that_line(fresh_db, tmp_path):
    content = HEADER + GOOD + b"2021-01-05,10.0,11\r.0,9.5,10,10.4,1000\n" + GOOD.replace(b"04", b"06")
    summary = load(fresh_db, write(tmp_path, "CR.csv", content), expect_exit=2)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (2, 1)
    assert rejects(fresh_db)[0][:2] == (3, "malformed_csv")
