"""Database side of the loader: connection, and the one-transaction load of a file in its mode."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import xxhash
from psycopg2 import sql

from loader.discovery import SourceFile
from loader.parsing import LAYOUTS, READ_ERRORS, CsvStream, IterReader, RejectSink, is_gzip, open_source
from warehouse_connection.connect import connect as connect_to_warehouse

HASH_CHUNK_BYTES = 1 << 20


class DatabaseUnavailable(Exception):
    """The server cannot be reached or went away; the message says what to check."""


class LoadMode(StrEnum):
    """How a file's rows join its symbol's history (raw.load_log.load_mode)."""

    APPEND = "append"  # the file is the latest load plus new lines: only those are loaded
    MERGE = "merge"  # the file's dates supersede the same dates; the others are kept
    REPLACE = "replace"  # --replace only: the file becomes the symbol's whole history


@dataclass
class FileResult:
    path: str
    status: str  # loaded | unchanged | rejected
    mode: str | None = None  # a LoadMode, for loaded files
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    blank_lines: int = 0
    reason: str | None = None
    load_id: int | None = None
    already_rejected: bool = False  # the same content was rejected before: nothing stored again

    def take_counts(self, parsed: CsvStream) -> None:
        """The counts of a finished parse; a file rejected whole becomes 'rejected' with its reason."""
        if parsed.rejection is not None:
            self.status, self.reason = "rejected", parsed.rejection.reason
        self.rows_read = parsed.counts.rows_read
        self.rows_rejected = parsed.counts.rows_rejected
        self.blank_lines = parsed.counts.blank_lines


@dataclass(frozen=True)
class FileDigest:
    """XXH3-128 and size of a file's content (a gzip file's uncompressed bytes, so that a file
    compressed again after a day's line was added is still an append), and the same of the
    prefix it was asked about (for append)."""

    content_hash: str
    size: int
    prefix_hash: str | None = None  # None: no prefix asked, or the file is not longer than it
    prefix_lines: int = 0  # newlines in the prefix: the number of its last line
    prefix_ends_line: bool = False
    # A gzip file's hash of its compressed bytes: what loads logged before content was hashed
    # hold, so such a file, unchanged, is still recognised as unchanged.
    compressed_hash: str | None = None

    @property
    def hashes(self) -> list[str]:
        """Every hash a load of this same file can have logged."""
        return [self.content_hash, *([self.compressed_hash] if self.compressed_hash else [])]


@dataclass(frozen=True)
class LiveLoad:
    load_id: int
    content_hash: str | None
    size: int | None


@dataclass(frozen=True)
class Claim:
    """What a load of a file will do, decided under its symbol's lock."""

    outcome: str  # new | unchanged | already_rejected
    load_id: int | None = None
    mode: LoadMode | None = None
    append_offset: int = 0
    first_line: int = 1
    earlier_reason: str | None = None


def connect() -> psycopg2.extensions.connection:
    """Connect with the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)."""
    try:
        conn = connect_to_warehouse("stock_analytics loader")
    except psycopg2.OperationalError as exc:
        detail = " ".join(str(exc).split())
        raise DatabaseUnavailable(
            f"cannot connect to the database ({detail}). Is it running (make db-up)? "
            'Are the PG* variables set (eval "$(make -s env ROLE=loader)")?'
        ) from None
    # The COPY rows are UTF-8 (the parser checked); a database in another encoding converts
    # them, or refuses a character it cannot hold, instead of storing garbled bytes.
    conn.set_client_encoding("UTF8")
    with conn, conn.cursor() as cur:
        # One commit per file: without this, thousands of files wait for thousands of WAL
        # flushes. A server crash can then lose the last moments of commits, each whole (a
        # file is one transaction, its load_log row with it), and a re-run loads them again.
        cur.execute("set synchronous_commit = off")
    return conn


def file_digest(path: Path, prefix_size: int | None = None) -> FileDigest:
    """Hash the file's content in one pass, noting the hash of its first `prefix_size` bytes on
    the way; a gzip file's content is its uncompressed bytes. A gzip file that cannot be read
    to its end (truncated, corrupt) is known by the hash of its bytes: the read that rejects it
    comes next, and the same broken file seen again is recognised."""
    try:
        return _content_digest(path, prefix_size)
    except READ_ERRORS:
        if not is_gzip(path):
            raise
        return FileDigest(content_hash=_bytes_hash(path), size=path.stat().st_size)


def _content_digest(path: Path, prefix_size: int | None) -> FileDigest:
    # XXH3-128: detects changed content as surely as a cryptographic hash would (nobody forges
    # price files against us) at memory speed; SHA-256 here cost a sixth of the loader's CPU.
    digest = xxhash.xxh3_128()
    size = 0
    prefix_hash: str | None = None
    prefix_lines = 0
    prefix_ends_line = False
    with open_source(path) as fh:
        if prefix_size is not None:
            remaining = prefix_size
            while remaining and (chunk := fh.read(min(HASH_CHUNK_BYTES, remaining))):
                digest.update(chunk)
                size += len(chunk)
                remaining -= len(chunk)
                prefix_lines += chunk.count(b"\n")
                prefix_ends_line = chunk.endswith(b"\n")
            if not remaining:
                prefix_hash = digest.hexdigest()  # xxh3 goes on hashing after a hexdigest
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    if prefix_size is not None and size == prefix_size:
        prefix_hash = None  # nothing after the prefix: not an append
    return FileDigest(
        content_hash=digest.hexdigest(),
        size=size,
        prefix_hash=prefix_hash,
        prefix_lines=prefix_lines,
        prefix_ends_line=prefix_ends_line,
        compressed_hash=_bytes_hash(path) if is_gzip(path) else None,
    )


def _bytes_hash(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with path.open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_statement(table: str, columns: tuple[str, ...], options: str = "format csv") -> sql.Composed:
    schema, name = table.split(".")
    return sql.SQL("copy {}.{} ({}) from stdin with ({})").format(
        sql.Identifier(schema),
        sql.Identifier(name),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(options),
    )


@dataclass(frozen=True)
class SourceLog:
    """What raw.load_log holds for a source, read under its lock: its newest live load (what an
    unchanged file equals and an append extends), its loads rejected before (content hash ->
    load id and reason, the newest kept), and the id a new load of it takes."""

    latest: LiveLoad | None
    rejected: dict[str, tuple[int, str | None]]
    next_load_id: int


def lock_source(cur: psycopg2.extensions.cursor, source_key: str) -> SourceLog:
    """Take the source's lock (held to the end of the transaction), then read its log. One round
    trip, two statements: under READ COMMITTED the second sees a load of the same source that
    committed while the first waited for the lock."""
    cur.execute(
        """
        select pg_advisory_xact_lock(hashtextextended(%(key)s, 0));
        select latest.load_id, latest.content_hash, latest.file_size_bytes,
               (select coalesce(json_agg(json_build_array(content_hash, load_id, error)
                                         order by load_id), '[]')
                  from raw.load_log
                 where source_key = %(key)s and status = 'rejected' and content_hash is not null),
               nextval(pg_get_serial_sequence('raw.load_log', 'load_id'))
          from (select) as one
          left join lateral (
              select load_id, content_hash, file_size_bytes from raw.load_log
               where source_key = %(key)s and status = 'loaded'
               order by load_id desc limit 1
          ) as latest on true
        """,
        {"key": source_key},
    )
    load_id, content_hash, size, rejected, next_load_id = cur.fetchone()
    return SourceLog(
        latest=None if load_id is None else LiveLoad(load_id, content_hash, size),
        rejected={digest: (earlier_id, reason) for digest, earlier_id, reason in rejected},
        next_load_id=next_load_id,
    )


def _choose_mode(digest: FileDigest, latest: LiveLoad | None, replace: bool) -> Claim:
    if replace:
        return Claim("new", mode=LoadMode.REPLACE)
    if (
        latest is not None
        and latest.size is not None
        and digest.prefix_hash is not None
        and digest.prefix_hash == latest.content_hash
        and digest.prefix_ends_line
    ):
        return Claim(
            "new", mode=LoadMode.APPEND, append_offset=latest.size, first_line=digest.prefix_lines + 1
        )
    return Claim("new", mode=LoadMode.MERGE)


def _claim_load(source_log: SourceLog, digest: FileDigest | None, replace: bool) -> Claim:
    """Under the source's lock: the file is unchanged, was rejected before with this very
    content, or is a new load in its mode, with the load id its log row and rows will have
    (the row itself is written with the outcome, in the same transaction)."""
    known_hashes = [] if digest is None else digest.hashes
    latest = source_log.latest
    if latest is not None and latest.content_hash in known_hashes:
        return Claim("unchanged")
    earlier = [source_log.rejected[h] for h in known_hashes if h in source_log.rejected]
    if earlier:  # this content was rejected before: report it, store nothing again
        load_id, reason = max(earlier)
        return Claim("already_rejected", load_id=load_id, earlier_reason=reason)
    claim = (
        Claim("new", mode=LoadMode.REPLACE if replace else LoadMode.MERGE)
        if digest is None
        else _choose_mode(digest, latest, replace)
    )
    return dataclasses.replace(claim, load_id=source_log.next_load_id)


def _log_load(
    cur: psycopg2.extensions.cursor,
    source: SourceFile,
    digest: FileDigest | None,
    claim: Claim,
    result: FileResult,
) -> None:
    """Log the load with its outcome (one row, written last so it is never updated). A
    successful replace supersedes the source's earlier live loads in the same transaction;
    merges are checked for what they cover at the end of the run."""
    params = {
        "id": claim.load_id,
        "key": source.source_key,
        "path": str(source.path.resolve()),
        "kind": source.kind.value,
        "symbol": source.symbol,
        "asset_type": source.asset_type,
        "digest": None if digest is None else digest.content_hash,
        "size": None if digest is None else digest.size,
        "status": result.status,
        "mode": claim.mode.value if claim.mode else None,
        "offset": claim.append_offset if claim.mode is LoadMode.APPEND else None,
        "read": result.rows_read,
        "loaded": result.rows_loaded,
        "rejected": result.rows_rejected,
        "blank": result.blank_lines,
        "error": result.reason,
    }
    supersede = (
        """;
        update raw.load_log
           set status = 'superseded', superseded_by = %(id)s, superseded_at = clock_timestamp()
         where source_key = %(key)s and status = 'loaded' and load_id <> %(id)s
        """
        if result.status == "loaded" and claim.mode is LoadMode.REPLACE
        else ""
    )
    cur.execute(
        """
        insert into raw.load_log (load_id, source_key, file_path, file_kind, symbol, asset_type,
                                  content_hash, file_size_bytes, status, load_mode, append_offset_bytes,
                                  rows_read, rows_loaded, rows_rejected, blank_lines, error,
                                  started_at, finished_at)
        overriding system value
        values (%(id)s, %(key)s, %(path)s, %(kind)s, %(symbol)s, %(asset_type)s, %(digest)s, %(size)s,
                %(status)s, %(mode)s, %(offset)s, %(read)s, %(loaded)s, %(rejected)s, %(blank)s,
                %(error)s, now(), clock_timestamp())
        """
        + supersede,
        params,
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


def load_source(
    conn: psycopg2.extensions.connection, source: SourceFile, replace: bool = False
) -> FileResult:
    """Load one file in one transaction, in its mode: unchanged files are skipped, files rejected
    before with the same content are reported without storing anything again, bad ones are
    rejected with a reason. Either the file's rows join the symbol's history at commit (and, in
    replace mode, supersede its earlier loads), or nothing changes."""
    layout = LAYOUTS[source.kind]
    result = FileResult(path=str(source.path), status="loaded")
    rejects = RejectSink()
    digest: FileDigest | None = None
    try:
        with conn, conn.cursor() as cur, open_source(source.path) as stream:
            source_log = lock_source(cur, source.source_key)
            latest = source_log.latest
            # One read hashes the file and, unless replacing, its prefix the size of the latest
            # load, so that an append is recognised (the lock is held: nothing changes meanwhile).
            digest = file_digest(source.path, None if replace or latest is None else latest.size)
            claim = _claim_load(source_log, digest, replace)
            if claim.outcome != "new":
                return _not_loaded(result, claim)
            assert claim.load_id is not None
            result.load_id, result.mode = claim.load_id, claim.mode.value if claim.mode else None
            if claim.mode is LoadMode.APPEND:
                stream.seek(claim.append_offset)
                parsed = CsvStream(stream, layout, rejects, continue_at_line=claim.first_line)
            else:
                parsed = CsvStream(stream, layout, rejects)
            if parsed.rejection is not None:
                # The symbol's earlier loads stay: a broken file must not wipe good data.
                parsed.reject_all()
            else:
                copy = _copy_statement(layout.table, _copy_columns(source), "format text, null ''")
                cur.copy_expert(copy, IterReader(parsed.copy_chunks(b"%d\t" % claim.load_id)))
                result.rows_loaded = cur.rowcount
                if result.rows_loaded != parsed.counts.rows_accepted:
                    raise RuntimeError(
                        f"COPY stored {cur.rowcount} rows, expected {parsed.counts.rows_accepted}"
                    )
            result.take_counts(parsed)
            _copy_rejects(cur, claim.load_id, rejects)
            _log_load(cur, source, digest, claim, result)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(
            f"the database went away while loading {source.path} ({detail}); nothing of that file "
            "was written. Re-run the loader to finish: loaded files are skipped as unchanged."
        ) from None
    except READ_ERRORS as exc:
        # Unreadable or corrupt (e.g. a truncated gzip): nothing of it was written.
        result = FileResult(path=str(source.path), status="rejected", reason=f"cannot read the file: {exc}")
        _log_rejected_file(conn, source, digest, result)
    except psycopg2.errors.UntranslatableCharacter as exc:
        # The database's encoding (say LATIN1) has no such character: the file cannot be stored
        # as it is; its transaction was rolled back whole.
        detail = " ".join(str(exc).split())
        result = FileResult(
            path=str(source.path),
            status="rejected",
            reason=f"the database's encoding cannot hold a character of this file ({detail})",
        )
        _log_rejected_file(conn, source, digest, result)
    finally:
        rejects.close()
    return result


def _not_loaded(result: FileResult, claim: Claim) -> FileResult:
    if claim.outcome == "unchanged":
        result.status = "unchanged"
    else:  # already rejected: the problem is still there, but it is on record once
        result.status, result.already_rejected, result.load_id = "rejected", True, claim.load_id
        result.reason = (
            f"rejected before with the same content (load_id {claim.load_id}): {claim.earlier_reason}"
        )
    return result


def _copy_columns(source: SourceFile) -> tuple[str, ...]:
    """Columns in the order the COPY rows give them: load_id, line_number, the file's fields."""
    return ("load_id", "line_number", *LAYOUTS[source.kind].columns)


def _log_rejected_file(
    conn: psycopg2.extensions.connection, source: SourceFile, digest: FileDigest | None, result: FileResult
) -> None:
    with conn, conn.cursor() as cur:
        claim = _claim_load(lock_source(cur, source.source_key), digest, replace=False)
        if claim.outcome == "new":
            _log_load(cur, source, digest, claim, result)
            result.load_id = claim.load_id
        elif claim.outcome == "already_rejected":
            _not_loaded(result, claim)


def analyze_raw(conn: psycopg2.extensions.connection, rows_written: dict[str, int]) -> list[str]:
    """Fresh planner statistics where a build would be misplanned without them (a table just
    filled, planned for a handful of rows, can make the staging build's joins run for minutes
    instead of seconds). A raw table (rows_written: table -> rows this run wrote to it) is
    analyzed when it never was, or when the run wrote more rows than autovacuum waits for before
    analyzing it (autovacuum_analyze_threshold + autovacuum_analyze_scale_factor x its rows,
    its own storage parameters first). A daily refresh adds a sliver of tables whose statistics
    still describe them (analyzing the raw rows and the load log took 1.8-2.6 s of it at Kaggle
    scale), and autovacuum analyzes them when the changes add up, as for any table. Returns
    the tables analyzed."""
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            select table_name from (
                select relation.oid::regclass::text as table_name, relation.reltuples, written.rows,
                       coalesce(
                           (select option_value::float8 from pg_options_to_table(relation.reloptions)
                             where option_name = 'autovacuum_analyze_threshold'),
                           current_setting('autovacuum_analyze_threshold')::float8
                       ) as threshold,
                       coalesce(
                           (select option_value::float8 from pg_options_to_table(relation.reloptions)
                             where option_name = 'autovacuum_analyze_scale_factor'),
                           current_setting('autovacuum_analyze_scale_factor')::float8
                       ) as scale_factor
                  from unnest(%(tables)s::regclass[], %(rows)s::bigint[]) as written (relation_id, rows)
                 inner join pg_class as relation on relation.oid = written.relation_id
            ) as raw_table
             where reltuples < 0 or rows > threshold + scale_factor * reltuples
             order by table_name
            """,
            {"tables": list(rows_written), "rows": list(rows_written.values())},
        )
        due = [row[0] for row in cur.fetchall()]
    if due:
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f"analyze {', '.join(due)}")
        finally:
            conn.autocommit = False
    return due
