"""Stream a source CSV into COPY-ready bytes, setting aside every line that cannot be a raw row.

The loader keeps values as they came: it only checks structure (encoding, field count, header).
Casting and value checks (NaN, High < Low, ...) belong to the staging models and the dbt tests.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from loader.copy_text import copy_text_row
from loader.discovery import FileKind

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 8192
READ_BUFFER_BYTES = 256 << 10
MAX_LINE_BYTES = 1 << 20
# The longest header line read: the real ones are under 200 bytes.
MAX_HEADER_BYTES = 64 << 10
# What reading a damaged file raises (a truncated or corrupt gzip among them).
READ_ERRORS = (OSError, EOFError, zlib.error)
HEADER_PROBLEMS = ("missing_header", "wrong_header")
LOOKS_LIKE_DATE = re.compile(r"^\s*\d{1,4}[-/]\d{1,2}[-/]\d{1,4}\s*$")


@dataclass(frozen=True)
class TableLayout:
    """A source file format: its expected header and the raw table columns its fields go to."""

    table: str
    header: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def field_count(self) -> int:
        return len(self.header)


PRICES_LAYOUT = TableLayout(
    table="raw.daily_prices",
    header=("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"),
    columns=("date", "open", "high", "low", "close", "adj_close", "volume"),
)
SYMBOLS_LAYOUT = TableLayout(
    table="raw.symbols_meta",
    header=(
        "Nasdaq Traded",
        "Symbol",
        "Security Name",
        "Listing Exchange",
        "Market Category",
        "ETF",
        "Round Lot Size",
        "Test Issue",
        "Financial Status",
        "CQS Symbol",
        "NASDAQ Symbol",
        "NextShares",
    ),
    columns=(
        "nasdaq_traded",
        "symbol",
        "security_name",
        "listing_exchange",
        "market_category",
        "etf",
        "round_lot_size",
        "test_issue",
        "financial_status",
        "cqs_symbol",
        "nasdaq_symbol",
        "next_shares",
    ),
)
LAYOUTS = {FileKind.PRICES: PRICES_LAYOUT, FileKind.SYMBOLS: SYMBOLS_LAYOUT}


class FileRejected(Exception):
    """The whole file cannot be loaded (binary, empty, wrong header, no data rows)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class LineCounts:
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    blank_lines: int = 0


@dataclass
class RejectSink:
    """Rejected lines, spooled to disk past a few MB so memory stays flat on a bad file."""

    count: int = 0
    _spool: tempfile.SpooledTemporaryFile = field(
        # Closed by close(): the spool outlives any one block.
        default_factory=lambda: tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+b")  # noqa: SIM115
    )

    def add(self, line_number: int, raw: bytes, code: str, reason: str) -> None:
        self.count += 1
        text = raw.replace(b"\x00", b"\\x00").decode("utf-8", errors="backslashreplace")
        row = io.StringIO()
        csv.writer(row, lineterminator="\n").writerow([line_number, text, code, reason])
        self._spool.write(row.getvalue().encode())

    def copy_source(self) -> BinaryIO:
        self._spool.seek(0)
        return self._spool

    def close(self) -> None:
        self._spool.close()


def is_gzip(path: Path) -> bool:
    with path.open("rb") as probe:
        return probe.read(2) == GZIP_MAGIC


def open_source(path: Path) -> io.BufferedReader:
    """Open a CSV or gzip-compressed CSV (recognised by its bytes, not its name) for binary reading."""
    if is_gzip(path):
        return io.BufferedReader(gzip.open(path, "rb"), buffer_size=READ_BUFFER_BYTES)  # type: ignore[arg-type]
    return path.open("rb", buffering=READ_BUFFER_BYTES)  # a BufferedReader: has peek()


def _normalise_header(fields: list[str]) -> tuple[str, ...]:
    return tuple(f.strip().casefold() for f in fields)


def _csv_fields(text: str) -> list[str] | None:
    """The fields of one CSV line; None if the csv module cannot read it (a stray carriage
    return inside the line, a field over its size limit)."""
    try:
        return next(csv.reader([text]), [])
    except csv.Error:
        return None


# Rows go out in COPY's text format (loader.copy_text); the loader's COPY says NULL '', so an
# empty field is NULL, as in the CSV files.
class CsvStream:
    """One pass over one source file: header check, then COPY rows out and rejects aside.

    Construct it (which reads and checks the header). If `rejection` is None, iterate
    `copy_chunks()` once; otherwise call `reject_all()` to account for the file's lines.
    Line numbers are the file's own, 1-based, the header being line 1. An append reads from
    where the earlier load ended: `continue_at_line` is the number of the stream's first line,
    and there is no header to check.
    """

    def __init__(
        self,
        stream: io.BufferedReader,
        layout: TableLayout,
        rejects: RejectSink,
        continue_at_line: int | None = None,
    ) -> None:
        self.layout = layout
        self.counts = LineCounts()
        self.rejects = rejects
        self._stream = stream
        self._separators = layout.field_count - 1
        self._header_key = _normalise_header(list(layout.header))
        self._line_number = 0
        self._first_data_line: bytes | None = None
        self.rejection: FileRejected | None = None
        if continue_at_line is not None:
            self._line_number = continue_at_line - 1
            return
        try:
            self._check_header()
        except FileRejected as exc:
            self.rejection = exc

    # ---- header -------------------------------------------------------------------------
    def _check_header(self) -> None:
        head = self._stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        if not head:
            raise FileRejected("empty_file", "the file is empty (0 bytes)")
        if b"\x00" in head:
            raise FileRejected("binary_file", "the file holds binary data (NUL bytes), not CSV text")
        first = self._stream.readline(MAX_HEADER_BYTES + 1)
        self._line_number = 1
        if len(first) > MAX_HEADER_BYTES:  # memory stays flat on a file without newlines
            raise FileRejected(
                "header_too_long",  # not a header problem reject_all() could read line by line
                f"the first line is longer than {MAX_HEADER_BYTES:,} bytes: not a price file header "
                f"(it begins '{first[:80].decode(errors='replace')}')",
            )
        line = first.removeprefix(UTF8_BOM).rstrip(b"\r\n")
        try:
            fields = _csv_fields(line.decode("utf-8")) or []
        except UnicodeDecodeError:
            raise FileRejected(
                "binary_file", "the first line is not UTF-8 text; is this a CSV file?"
            ) from None
        expected = ",".join(self.layout.header)
        if _normalise_header(fields) != self._header_key:
            if fields and LOOKS_LIKE_DATE.match(fields[0]):
                # The first line is data: count it as a row so the accounting covers it.
                self._first_data_line = first
                raise FileRejected("missing_header", f"no header line; expected '{expected}' as line 1")
            found = line.decode(errors="replace")
            if len(found) > 200:
                found = found[:200] + "..."
            raise FileRejected("wrong_header", f"header is '{found}', expected '{expected}'")
        self._skip_to_data()

    def _skip_to_data(self) -> None:
        """Read past blank lines so that a header-only file is known before anything is written."""
        while True:
            line = self._stream.readline()
            if not line:
                raise FileRejected("no_data_rows", "the file has a header but no data rows")
            self._line_number += 1
            if line.strip():
                self._first_data_line = line
                return
            self.counts.blank_lines += 1

    # ---- rows ---------------------------------------------------------------------------
    def _lines(self) -> Iterator[tuple[int, bytes]]:
        if self._first_data_line is not None:
            yield self._line_number, self._first_data_line
        number = self._line_number
        for line in self._stream:
            number += 1
            yield number, line

    def _careful_row(self, number: int, body: bytes, has_newline: bool) -> bytes | None:
        """One line checked field by field: its COPY row (without prefix and line number),
        or None when it is blank (counted apart) or rejected (set aside with the reason)."""
        if not body.strip():
            self.counts.blank_lines += 1
            return None
        self.counts.rows_read += 1
        if b"\x00" in body:
            return self._reject(number, body, "nul_byte", "the line contains NUL bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not valid UTF-8 (byte 0x{body[exc.start]:02x} at {exc.start})"
            return self._reject(number, body, "encoding", reason)
        fields = _csv_fields(text)
        if fields is None:
            return self._reject(
                number, body, "malformed_csv", "not a readable CSV line (a stray carriage return?)"
            )
        if len(fields) != self.layout.field_count:
            reason = f"expected {self.layout.field_count} fields, found {len(fields)}"
            if not has_newline:
                reason += " (last line has no newline: the file looks truncated)"
            return self._reject(number, body, "field_count" if has_newline else "truncated_line", reason)
        if _normalise_header(fields) == self._header_key:
            return self._reject(number, body, "repeated_header", "the header appears again inside the file")
        self.counts.rows_accepted += 1
        return copy_text_row(fields).encode()

    def _reject(self, number: int, body: bytes, code: str, reason: str) -> None:
        self.counts.rows_rejected += 1
        self.rejects.add(number, body, code, reason)

    def _convert_block(self, part: bytes, first_number: int, prefix: bytes) -> bytes:
        """COPY rows for a run of whole lines (newlines between them, none at the end)."""
        if b"\r" in part:  # CRLF files
            part = part.replace(b"\r\n", b"\n").removesuffix(b"\r")
        lines = part.split(b"\n")
        separators = self._separators
        # Fast path, checked on the whole block at C speed, then per line: plain ASCII, no
        # quoting, each line starting with a digit (the date; a blank line or a repeated
        # header does not) and holding exactly the right number of commas.
        if (
            part.isascii()
            and b'"' not in part
            and b"\x00" not in part
            and b"\r" not in part
            and b"\t" not in part
            and b"\\" not in part
        ):
            rows = [
                b"%b%d\t%b\n" % (prefix, n, line)
                for n, line in enumerate(lines, first_number)
                if line[:1].isdigit() and line.count(b",") == separators
            ]
            if len(rows) == len(lines):  # one pass checks and formats; else redo it carefully
                self.counts.rows_read += len(lines)
                self.counts.rows_accepted += len(lines)
                # With no tab or backslash in the block, commas become COPY text separators as is.
                return b"".join(rows).replace(b",", b"\t")
        rows = []
        for n, line in enumerate(lines, first_number):
            row = self._careful_row(n, line, has_newline=True)
            if row is not None:
                rows.append(b"%b%d\t%b" % (prefix, n, row))
        return b"".join(rows)

    def copy_chunks(self, prefix: bytes) -> Iterator[bytes]:
        """COPY text-format bytes of the accepted rows, a block (256 KB of input) at a time.

        `prefix` goes before each row's line number: the fields that are the same for the whole
        file, each followed by a tab (its load_id).
        Reads whole blocks and works on the complete lines in each, so the common case costs a
        few C-level scans per block and one formatting step per line.
        """
        pending = self._first_data_line or b""
        next_number = self._line_number if self._first_data_line is not None else self._line_number + 1
        skipping_overlong_line = False
        while block := self._stream.read(READ_BUFFER_BYTES):
            if skipping_overlong_line:  # drop the rest of a line already rejected as too long
                end = block.find(b"\n")
                if end < 0:
                    continue
                block, skipping_overlong_line = block[end + 1 :], False
                next_number += 1
            pending += block
            cut = pending.rfind(b"\n")
            if cut < 0:
                if len(pending) > MAX_LINE_BYTES:  # memory stays flat, whatever is in the file
                    self.counts.rows_read += 1
                    self._reject(
                        next_number,
                        pending[:200] + b"...",
                        "line_too_long",
                        f"line longer than {MAX_LINE_BYTES:,} bytes",
                    )
                    skipping_overlong_line, pending = True, b""
                continue
            part, pending = pending[:cut], pending[cut + 1 :]
            converted = self._convert_block(part, next_number, prefix)
            next_number += part.count(b"\n") + 1
            if converted:
                yield converted
        if pending:  # a last line with no newline after it
            row = self._careful_row(next_number, pending.removesuffix(b"\r"), has_newline=False)
            if row is not None:
                yield b"%b%d\t%b" % (prefix, next_number, row)

    def reject_all(self) -> None:
        """The file is rejected as a whole: every data line goes to the rejects with the file's reason.

        Only a bad header leaves lines to account for; binary, empty and header-only files have none.
        """
        assert self.rejection is not None
        if self.rejection.code not in HEADER_PROBLEMS:
            return
        code, reason = self.rejection.code, self.rejection.reason
        for number, line in self._lines():
            body = line.rstrip(b"\r\n")
            if not body.strip():
                self.counts.blank_lines += 1
                continue
            self.counts.rows_read += 1
            self._reject(number, body, code, reason)


class IterReader(io.RawIOBase):
    """A read()-able file over an iterator of byte chunks, for psycopg2's copy_expert."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return next(self._chunks, b"")
