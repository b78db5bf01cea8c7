"""Parsing that never raises: every value a raw row can hold, loaded through the loader and
built with `dbt build`, either becomes a typed value or rejects its row with a specific reason
in stg_market_data__rejected_prices; the build stays green and no row is lost.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import PROJECT_DIR, Database

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
GOOD = "10.5,11.25,10.25,11.0,10.5"  # open, high, low, close, adj close
ZEROS = "0" * 400
JUNK = "9" * 1500  # digits, but longer than any number the parser reads (1,000 characters)
SESSIONS = [line.strip() for line in (PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv").open()][1:]

OVERFLOW = "overflows double precision (above 1.8e308): "
UNDERFLOW = "underflows double precision (nonzero, below 2.2e-308): "
OUT_OF_RANGE = "is out of range (a price or volume is 0 or 1e-20 to 1e15 in size): "
BAD_EXPONENT = "has an exponent beyond double precision's range: "
NOT_BIGINT = "volume is out of range for bigint: "

# line of the file -> (the row's values after the date, the exact rejection reason)
REJECTED = {
    3: (f"10.5,11.25,10.25,1{ZEROS},10.5,1000", f"close {OVERFLOW}'1{'0' * 29}...' (401 characters)"),
    4: (f"10.5,11.25,10.25,0.{ZEROS}1,10.5,1000", f"close {UNDERFLOW}'0.{'0' * 28}...' (403 characters)"),
    5: ("10.5,11.25,10.25,1e400,10.5,1000", f"close {OVERFLOW}'1e400'"),
    6: ("10.5,11.25,10.25,1e-400,10.5,1000", f"close {UNDERFLOW}'1e-400'"),
    7: ("1e99999,11.25,10.25,11.0,10.5,1000", f"open {BAD_EXPONENT}'1e99999'"),
    8: (
        f"10.5,{JUNK},10.25,11.0,10.5,1000",
        f"high is too long to be a number (1000 characters at most): '{'9' * 30}...' (1500 characters)",
    ),
    9: ("10.5,11.25,NaN,11.0,10.5,1000", "low is not a finite number: 'NaN'"),
    10: ("10.5,11.25,10.25,11.0,-inf,1000", "adj_close is not a finite number: '-inf'"),
    11: (f"{GOOD},1234567890123456789012", f"{NOT_BIGINT}'1234567890123456789012'"),
    12: (f"{GOOD},1e400", f"{NOT_BIGINT}'1e400'"),
    13: (f"{GOOD},9223372036854775808", f"{NOT_BIGINT}'9223372036854775808'"),
    14: (f"{GOOD},1500.5", "volume is not a whole number: '1500.5'"),
    15: ("1e400,11.25,10.25,11.0,10.5,1e400", f"open {OVERFLOW}'1e400'; {NOT_BIGINT}'1e400'"),
    # Values a bigint or a double holds, but no price or volume: the tests' ratios and the
    # marts' sums would raise.
    16: (
        f"{GOOD},9223372036854775807",
        f"volume {OUT_OF_RANGE}'9223372036854775807'",
    ),
    17: (
        "10.5,11.25,10.25,1.7976931348623157e308,10.5,1000",
        f"close {OUT_OF_RANGE}'1.7976931348623157e308'",
    ),
    18: (
        "10.5,11.25,10.25,2.2250738585072014e-308,10.5,1000",
        f"close {OUT_OF_RANGE}'2.2250738585072014e-308'",
    ),
}
LONGEST_PLAIN = "123456789012345.12345678901234567890"  # 15 + 20 digits: the cheap path's widest
# line -> (values after the date, the close and volume staging must hold, as written): the
# careful path's edge cases that are numbers after all, and the cheap path's longest plain
# numbers. Expected values are Python's reading of the same text (both round correctly).
ACCEPTED = {
    19: (f"{GOOD},999999999999999", ("11.0", "999999999999999")),
    20: ("10.5,11.25,10.25,999999999999999.9,10.5,1000", ("999999999999999.9", "1000")),
    21: ("10.5,11.25,10.25,9.999999999999999e14,10.5,1000", ("9.999999999999999e14", "1000")),
    22: ("10.5,11.25,10.25,1.5e-5,10.5,1.5e6", ("1.5e-5", "1.5e6")),
    23: (f"10.5,11.25,10.25,0.{'0' * 19}1,10.5,1000", ("1e-20", "1000")),
    24: ("10.5,11.25,10.25,1e-20,10.5,1000", ("1e-20", "1000")),
    25: (f"10.5,11.25,10.25,{LONGEST_PLAIN},10.5,1000.0", (LONGEST_PLAIN, "1000")),
    26: ("10.5,11.25,10.25,0.10108667612075806,10.5,-0", ("0.10108667612075806", "0")),
    27: ("10.5,11.25,10.25,1.0108667612075806e-1,10.5,1000", ("0.10108667612075806", "1000")),
}
FIRST_GOOD, LAST_GOOD = 2, 28


def write_file(folder: Path) -> tuple[Path, dict[int, str]]:
    """One price file: a good row, every bad value, every edge case, a good last row; each
    line on a session of its own, in order."""
    rows = {FIRST_GOOD: f"{GOOD},1000", LAST_GOOD: f"{GOOD},2000"}
    rows |= {line: values for line, (values, _) in REJECTED.items()}
    rows |= {line: values for line, (values, _) in ACCEPTED.items()}
    dates = {line: SESSIONS[-300 + line] for line in rows}
    path = folder / "stocks" / "PARS.csv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + "".join(f"{dates[line]},{rows[line]}\n" for line in sorted(rows)))
    return path, dates


def test_bad_values_reject_their_rows_with_reasons_and_the_build_is_green(fresh_db: Database, tmp_path: Path):
    path, dates = write_file(tmp_path / "data")
    load = fresh_db.run_loader(path.parent.parent)
    assert load.returncode == 0, load.stderr  # the loader keeps values as text: every row loads

    build = fresh_db.dbt("build")
    assert build.returncode == 0, build.stdout[-3000:]

    rejected = fresh_db.query(
        "select line_number, rejection_reason, file_path from staging.stg_market_data__rejected_prices "
        "where symbol = 'PARS' order by line_number"
    )
    expected = {line: reason for line, (_, reason) in REJECTED.items()}
    assert {line: reason for line, reason, _ in rejected} == expected
    assert {file_path for _, _, file_path in rejected} == {str(path.resolve())}

    staged = fresh_db.query(
        "select line_number, trade_date::text, close, volume from staging.stg_market_data__daily_prices "
        "where symbol = 'PARS' order by line_number"
    )
    by_line = {line: (date, close, volume) for line, date, close, volume in staged}
    assert sorted(by_line) == [FIRST_GOOD, *ACCEPTED, LAST_GOOD]
    for line, (_, (close, volume)) in ACCEPTED.items():
        assert by_line[line] == (dates[line], float(close), int(float(volume))), line
    assert by_line[FIRST_GOOD] == (dates[FIRST_GOOD], 11.0, 1000)
    assert by_line[LAST_GOOD] == (dates[LAST_GOOD], 11.0, 2000)

    # Nothing lost: lines read = loaded = staged + rejected, and the marts hold every good day.
    read, loaded = fresh_db.query("select rows_read, rows_loaded from raw.load_log where symbol = 'PARS'")[0]
    assert read == loaded == len(by_line) + len(rejected) == 27
    reader = fresh_db.connect(role="reader")
    try:
        with reader.cursor() as cur:
            cur.execute("select count(*), max(close) from marts.fct_daily_prices where symbol = 'PARS'")
            assert cur.fetchone() == (len(by_line), 999999999999999.9)
    finally:
        reader.close()
