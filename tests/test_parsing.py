"""Parsing that never raises: every value a raw row can hold, loaded through the loader and
built with `dbt build`, either becomes a typed value or rejects its row with a specific reason
in stg_market_data__rejected_prices; the build stays green and no row is lost. And the cheap
path (clean_price_row: plain casts for a clean row) gives exactly what the parse macros give.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from devtools.databases import Database
from devtools.project import PROJECT_DIR

# Runs dbt or reads the built sample: `make test` runs it on both TimescaleDB editions.
pytestmark = pytest.mark.editions

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


# Tricky texts for the cheap path's bounds (clean_price_row), each put in its field of an
# otherwise good row. Boundaries: 1e-20 (20 fraction digits) and 1e-21; 14, 15 and 16
# integer digits (15 digits and a fraction round up to 1e15, out of range); the days each
# month has; forms only the parse macros read (sign, spaces, exponent, '.5', M/D/YYYY).
TRICKY_PRICES = [
    "0",
    "0.0",
    "0.",
    "00",
    "-0",
    "+0",
    "1.5",
    "1.",
    ".5",
    ".",
    "",
    " ",
    "1..2",
    "1,5",
    "0x10",
    f"0.{'0' * 19}1",
    f"0.{'0' * 19}9",
    f"0.{'0' * 20}1",
    f"0.{'0' * 20}",
    f"0.{'0' * 25}",
    f"1.{'0' * 20}",
    f"1.{'0' * 21}",
    "1e-20",
    "1E-20",
    "1e-21",
    "9.99e-21",
    "1.5e3",
    "1.5E+3",
    "12345678901234",
    "12345678901234.5",
    "99999999999999.99999999999999999999",
    "123456789012345",
    "999999999999999",
    "999999999999999.9",
    "999999999999999.95",
    "1000000000000000",
    "9999999999999999",
    "123456789012345.1",
    f"123456789012345.{'1' * 20}",
    "+1.5",
    "-1.5",
    " 1.5",
    "1.5 ",
    "\t1.5",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    "1" + "0" * 400,
    f"1.{'0' * 995}",
    f"1.{'0' * 1500}",
    "0001.5",
    "0.10108667612075806",
]
TRICKY_VOLUMES = [
    "0",
    "00",
    "-0",
    "1000",
    "1000.0",
    "1000.",
    "1.5e6",
    "+5",
    "-5",
    " 5",
    "5 ",
    "",
    "1,000",
    "99999999999999",
    "999999999999999",
    "1000000000000000",
    "9223372036854775807",
    "9223372036854775808",
    "1500.5",
    "NaN",
]
TRICKY_DATES = [
    "2020-02-29",
    "2021-02-29",
    "2000-02-29",
    "1900-02-29",
    "2021-02-28",
    "2021-02-30",
    "2021-04-30",
    "2021-04-31",
    "2021-01-31",
    "2021-12-31",
    "2021-06-31",
    "2021-09-31",
    "2021-11-30",
    "2021-11-31",
    "2021-03-29",
    "2021-01-01",
    "0999-01-01",
    "1000-01-01",
    "9999-12-31",
    "2021-13-01",
    "2021-00-10",
    "2021-01-00",
    "2021-1-4",
    "1/4/2021",
    "2/29/2021",
    "2/29/2020",
    " 2021-01-04",
    "2021-01-04 ",
    "",
    "2021/01/04",
    "20210104",
]
GOOD_ROW = {"date": "2021-01-04", "open": "10.5", "high": "11.25", "low": "10.25", "close": "11.0",
            "adj_close": "10.5", "volume": "1000"}  # fmt: skip
PRICE_FIELDS = ("open", "high", "low", "close", "adj_close")


def tricky_cases() -> list[tuple[str, str, dict[str, str]]]:
    """(field, text, row): every tricky text in each field it fits, the rest of the row good."""
    fields = [("date", TRICKY_DATES), *((field, TRICKY_PRICES) for field in PRICE_FIELDS)]
    fields.append(("volume", TRICKY_VOLUMES))
    return [(field, text, {**GOOD_ROW, field: text}) for field, texts in fields for text in texts]


def tricky_rows() -> list[dict[str, str]]:
    return [row for _, _, row in tricky_cases()]


def write_tricky_file(folder: Path, symbol: str = "TRCK") -> Path:
    """The tricky rows as a price file (CSV-quoted where a text holds a comma)."""
    path = folder / "stocks" / f"{symbol}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(HEADER.strip().split(","))
        out.writerows([row[c] for c in GOOD_ROW] for row in tricky_rows())
    return path


# What clean_price_row lets through: the texts of TRICKY_* that take the cheap path.
CHEAP_PRICES = {
    "0", "0.0", "0.", "00", "1.5", "1.", "0001.5", "0.10108667612075806", f"0.{'0' * 19}1",
    f"0.{'0' * 19}9", f"0.{'0' * 20}", f"1.{'0' * 20}", "12345678901234", "12345678901234.5",
    "99999999999999.99999999999999999999", "123456789012345", "999999999999999",
}  # fmt: skip
CHEAP_VOLUMES = {"0", "00", "1000", "99999999999999", "999999999999999"}
CHEAP_DATES = {
    "2021-02-28", "2021-04-30", "2021-01-31", "2021-12-31", "2021-11-30", "2021-03-29",
    "2021-01-01", "1000-01-01", "9999-12-31",
}  # fmt: skip
FIELDS = tuple(GOOD_ROW)
# Both paths, side by side, for every tricky row: the cheap path's casts (only where the
# check passes: elsewhere they would raise) and the parse macros with the range check.
BOTH_PATHS = """
with cases as (
    select * from (values {values}) as cases (case_id, {fields})
),
checked as (
    select *, {{{{ clean_price_row('date', {prices}, 'volume') }}}} as is_clean from cases
),
texts as (
    select case_id, is_clean, {texts} from checked
)
select
    case_id,
    is_clean,
    case when is_clean then cast(date_text as date) end as cheap_date,
    {cheap_prices},
    case when is_clean then cast(volume_text as bigint) end as cheap_volume,
    {{{{ safe_cast_date('date_text') }}}} as detailed_date,
    {detailed_prices},
    {{{{ number_in_range(safe_cast_bigint('volume_text'), 'bigint') }}}} as detailed_volume
from texts
order by case_id
"""


def both_paths_sql() -> str:
    quote = "'{}'".format
    values = ", ".join(
        f"({i}, {', '.join(quote(row[f].replace(chr(39), chr(39) * 2)) for f in FIELDS)})"
        for i, row in enumerate(tricky_rows())
    )
    return BOTH_PATHS.format(
        values=values,
        fields=", ".join(FIELDS),
        prices=list(PRICE_FIELDS),
        texts=", ".join(f"nullif(trim({f}), '') as {f}_text" for f in FIELDS),
        cheap_prices=", ".join(
            f"case when is_clean then cast({f}_text as float8) end as cheap_{f}" for f in PRICE_FIELDS
        ),
        detailed_prices=", ".join(
            f"{{{{ number_in_range(safe_cast_double('{f}_text')) }}}} as detailed_{f}" for f in PRICE_FIELDS
        ),
    )


def test_cheap_path_gives_what_the_parse_macros_give(fresh_db: Database):
    compiled = fresh_db.dbt("compile", "--quiet", "--inline", both_paths_sql())
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    results = fresh_db.query(compiled.stdout)
    rows = tricky_rows()
    assert len(results) == len(rows)

    cheap_texts: dict[str, set[str]] = {field: set() for field in FIELDS}
    detailed_by_case: dict[tuple[str, str], list] = {}
    for (_, is_clean, *values), (field, text, row) in zip(results, tricky_cases(), strict=True):
        cheap, detailed = values[:7], values[7:]
        detailed_by_case[field, text] = detailed
        if is_clean:
            # The same values, none missing: so the parse macros would give no reason either.
            assert cheap == detailed and None not in detailed, (row, cheap, detailed)
            cheap_texts[field].add(text)
    assert cheap_texts["date"] == CHEAP_DATES
    for field in PRICE_FIELDS:
        assert cheap_texts[field] == CHEAP_PRICES, field
    assert cheap_texts["volume"] == CHEAP_VOLUMES

    # The range rule itself, at the bounds the cheap path relies on (close: the 5th value).
    def close(text: str) -> float | None:
        return detailed_by_case["close", text][4]

    def date(text: str) -> str | None:
        value = detailed_by_case["date", text][0]
        return None if value is None else value.isoformat()

    assert close(f"0.{'0' * 19}1") == 1e-20
    assert close(f"0.{'0' * 20}1") is None  # 1e-21: out of range
    assert close("999999999999999.9") == 999999999999999.875
    assert close("999999999999999.95") is None  # its double is 1e15: out of range
    assert close("99999999999999.99999999999999999999") == 1e14
    assert close("1.5e3") == 1500.0 and close("+1.5") == 1.5 and close("NaN") is None
    assert date("2020-02-29") == "2020-02-29" and date("2000-02-29") == "2000-02-29"
    assert date("2021-02-29") is None and date("1900-02-29") is None and date("2021-04-31") is None
    assert date("2/29/2020") == "2020-02-29" and date(" 2021-01-04") == "2021-01-04"
