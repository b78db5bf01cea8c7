"""Database side of the loader: connection, raw schema, and the one-transaction load of a file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions
import xxhash
from psycopg2 import sql

from loader.discovery import SourceFile
from loader.parsing import LAYOUTS, READ_ERRORS, CsvStream, IterReader, RejectSink, open_source

SCHEMA_SQL = Path(__file__).with_name("schema.sql")
HASH_CHUNK_BYTES = 1 << 20
# Any constant works; it only has to be the same for every loader process.
SCHEMA_LOCK_KEY = 0x5354_4F43
PURGE_LOCK_KEY = 0x5354_4F44


class DatabaseUnavailable(Exception):
    """The server cannot be reached or went away; the message says what to check."""


@dataclass
class FileResult:
    path: str
    status: str  # loaded | unchanged | rejected
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    blank_lines: int = 0
    reason: str | None = None
    load_id: int | None = None

    def take_counts(self, parsed: CsvStream) -> None:
        """The counts of a finished parse; a file rejected whole becomes 'rejected' with its reason."""
        if parsed.rejection is not None:
            self.status, self.reason = "rejected", parsed.rejection.reason
        self.rows_read = parsed.counts.rows_read
        self.rows_rejected = parsed.counts.rows_rejected
        self.blank_lines = parsed.counts.blank_lines


def connect() -> psycopg2.extensions.connection:
    """Connect with the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)."""
    try:
        conn = psycopg2.connect("", application_name="stock_analytics loader")
    except psycopg2.OperationalError as exc:
        detail = " ".join(str(exc).split())
        raise DatabaseUnavailable(
            f"cannot connect to the database ({detail}). Is it running (make db-up)? "
            'Are the PG* variables set (eval "$(make -s env)")?'
        ) from None
    with conn, conn.cursor() as cur:
        # One commit per file: without this, thousands of files wait for thousands of WAL
        # flushes. A server crash can then lose the last moments of commits, each whole (a
        # file is one transaction, its load_log row with it), and a re-run loads them again.
        cur.execute("set synchronous_commit = off")
    return conn


def ensure_schema(conn: psycopg2.extensions.connection) -> None:
    with conn, conn.cursor() as cur:
        # Two loaders starting at once must not race on `create ... if not exists`.
        cur.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        cur.execute("set local client_min_messages = warning")
        cur.execute(SCHEMA_SQL.read_text())


def file_digest(path: Path) -> tuple[str, int]:
    # XXH3-128: detects changed content as surely as a cryptographic hash would (nobody forges
    # price files against us) at memory speed; SHA-256 here cost a sixth of the loader's CPU.
    digest = xxhash.xxh3_128()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy_statement(table: str, columns: tuple[str, ...], options: str = "format csv") -> sql.Composed:
    schema, name = table.split(".")
    return sql.SQL("copy {}.{} ({}) from stdin with ({})").format(
        sql.Identifier(schema),
        sql.Identifier(name),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(options),
    )


def _claim_load(
    cur: psycopg2.extensions.cursor, source: SourceFile, digest: str | None, size: int | None
) -> int | None:
    """Take the source's lock, then log a new load unless the source's current load has this
    very content; returns the new load_id, or None when the file is unchanged.

    Two statements on purpose (sent in one round trip): under READ COMMITTED each statement
    sees what committed before it started, so only an insert that starts after the lock is
    granted sees a load of the same source that committed while we waited for it.
    """
    cur.execute(
        """
        select pg_advisory_xact_lock(hashtextextended(%(key)s, 0));
        insert into raw.load_log (source_key, file_path, file_kind, symbol, asset_type,
                                  content_hash, file_size_bytes, status, started_at)
        select %(key)s, %(path)s, %(kind)s, %(symbol)s, %(asset_type)s, %(digest)s, %(size)s,
               'loaded', clock_timestamp()
         where not exists (select from raw.load_log
                            where source_key = %(key)s and status = 'loaded' and content_hash = %(digest)s)
        returning load_id
        """,
        {
            "key": source.source_key,
            "path": str(source.path.resolve()),
            "kind": source.kind.value,
            "symbol": source.symbol,
            "asset_type": source.asset_type,
            "digest": digest,
            "size": size,
        },
    )
    row = cur.fetchone()
    return None if row is None else row[0]


def _finish_load(
    cur: psycopg2.extensions.cursor, source: SourceFile, load_id: int, result: FileResult
) -> None:
    """Record the outcome; a successful load supersedes the source's previous one in the same
    transaction (its rows are deleted later, in bulk, by purge_replaced)."""
    cur.execute(
        """
        update raw.load_log set status = 'replaced'
         where %(status)s = 'loaded' and source_key = %(key)s and status = 'loaded' and load_id <> %(id)s;
        update raw.load_log
           set status = %(status)s, rows_read = %(read)s, rows_loaded = %(loaded)s,
               rows_rejected = %(rejected)s, blank_lines = %(blank)s, error = %(error)s,
               finished_at = clock_timestamp()
         where load_id = %(id)s
        """,
        {
            "status": result.status,
            "key": source.source_key,
            "id": load_id,
            "read": result.rows_read,
            "loaded": result.rows_loaded,
            "rejected": result.rows_rejected,
            "blank": result.blank_lines,
            "error": result.reason,
        },
    )


def _copy_rejects(cur: psycopg2.extensions.cursor, load_id: int, rejects: RejectSink) -> None:
    if not rejects.count:
        return
    # The spool has (line_number, raw_line, reason_code, reason); load_id is added by the default.
    cur.execute(
        "create temp table if not exists pg_temp.load_rejects_in "
        "(line_number integer, raw_line text, reason_code text, reason text)"
    )
    cur.execute("truncate pg_temp.load_rejects_in")
    cur.copy_expert(
        _copy_statement("pg_temp.load_rejects_in", ("line_number", "raw_line", "reason_code", "reason")),
        rejects.copy_source(),
    )
    cur.execute(
        """
        insert into raw.load_rejects (load_id, line_number, raw_line, reason_code, reason)
        select %s, line_number, raw_line, reason_code, reason from pg_temp.load_rejects_in
        """,
        (load_id,),
    )


def analyze_raw(conn: psycopg2.extensions.connection, data_changed: bool) -> None:
    """Fresh planner statistics: without them the staging build's joins are planned for a
    handful of rows and can run for many minutes instead of seconds. The load log is always
    analyzed (autovacuum never analyzes a table of under 50 rows; it costs milliseconds); the
    data tables when the run changed them."""
    tables = (
        "raw.load_log, raw.daily_prices, raw.symbols_meta, raw.load_rejects"
        if data_changed
        else "raw.load_log"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"analyze {tables}")
    finally:
        conn.autocommit = False


def purge_replaced(conn: psycopg2.extensions.connection) -> int:
    """Delete the raw rows of every replaced load in one pass; returns how many loads.

    Deferred from the loads themselves so the raw tables need no index (COPY runs at the speed
    of an unindexed table) and a run that replaces thousands of files scans the table once.
    Until then the rows are inert: their load is marked 'replaced' and staging reads 'loaded'.
    """
    with conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (PURGE_LOCK_KEY,))
        cur.execute(
            """
            with purged as (
                update raw.load_log set purged_at = clock_timestamp()
                 where status = 'replaced' and purged_at is null
                returning load_id, file_kind
            ),
            prices as (
                delete from raw.daily_prices
                 where load_id in (select load_id from purged where file_kind = 'prices')
            ),
            symbols as (
                delete from raw.symbols_meta
                 where load_id in (select load_id from purged where file_kind = 'symbols')
            )
            select count(*) from purged
            """
        )
        return cur.fetchone()[0]


def load_source(conn: psycopg2.extensions.connection, source: SourceFile) -> FileResult:
    """Load one file in one transaction: unchanged files are skipped, bad ones rejected with a reason.

    Either the whole file's rows replace the source's previous rows at commit, or nothing changes.
    """
    layout = LAYOUTS[source.kind]
    result = FileResult(path=str(source.path), status="loaded")
    rejects = RejectSink()
    digest: str | None = None
    size: int | None = None
    try:
        digest, size = file_digest(source.path)
        with conn, conn.cursor() as cur, open_source(source.path) as stream:
            load_id = _claim_load(cur, source, digest, size)
            if load_id is None:
                result.status = "unchanged"
                return result
            result.load_id = load_id
            parsed = CsvStream(stream, layout, rejects)
            if parsed.rejection is not None:
                # The previous load of this source stays: a broken file must not wipe good data.
                parsed.reject_all()
            else:
                copy = _copy_statement(layout.table, _copy_columns(source), "format text, null ''")
                cur.copy_expert(copy, IterReader(parsed.copy_chunks(b"%d\t" % load_id)))
                result.rows_loaded = cur.rowcount
                if result.rows_loaded != parsed.counts.rows_accepted:
                    raise RuntimeError(
                        f"COPY stored {cur.rowcount} rows, expected {parsed.counts.rows_accepted}"
                    )
            result.take_counts(parsed)
            _copy_rejects(cur, load_id, rejects)
            _finish_load(cur, source, load_id, result)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(
            f"the database went away while loading {source.path} ({detail}); nothing of that file "
            "was written. Re-run the loader to finish: loaded files are skipped as unchanged."
        ) from None
    except READ_ERRORS as exc:
        # Unreadable or corrupt (e.g. a truncated gzip): nothing of it was written.
        result = FileResult(path=str(source.path), status="rejected", reason=f"cannot read the file: {exc}")
        _log_rejected_file(conn, source, digest, size, result)
    finally:
        rejects.close()
    return result


def _copy_columns(source: SourceFile) -> tuple[str, ...]:
    """Columns in the order the COPY rows give them: load_id, line_number, the file's fields."""
    return ("load_id", "line_number", *LAYOUTS[source.kind].columns)


def _log_rejected_file(
    conn: psycopg2.extensions.connection,
    source: SourceFile,
    digest: str | None,
    size: int | None,
    result: FileResult,
) -> None:
    with conn, conn.cursor() as cur:
        load_id = _claim_load(cur, source, digest, size)
        if load_id is not None:
            _finish_load(cur, source, load_id, result)
    result.load_id = load_id
