"""Database side of the loader: connection, and the one-transaction load of a file in its mode."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import xxhash
from psycopg2 import sql
from psycopg2.extras import execute_values

from loader.discovery import SourceFile
from loader.parsing import (
    LAYOUTS,
    READ_ERRORS,
    CsvStream,
    IterReader,
    RejectSink,
    TableLayout,
    is_gzip,
    open_source,
)
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
        # Without this, thousands of commits wait for thousands of WAL flushes. A server crash
        # can then lose the last moments of commits, each whole (a file's rows commit with its
        # load_log row), and a re-run loads them again.
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


def lock_sources(cur: psycopg2.extensions.cursor, source_keys: list[str]) -> dict[str, SourceLog]:
    """Take the sources' locks (held to the end of the transaction), then read their logs. One
    round trip, two statements: under READ COMMITTED the second sees a load of the same source
    that committed while the first waited for its lock. Every loader takes a group's locks in
    the order of their keys, so two runs locking overlapping groups wait instead of deadlocking."""
    cur.execute(
        """
        select count(pg_advisory_xact_lock(lock_key))
          from (select distinct hashtextextended(source_key, 0) as lock_key
                  from unnest(%(keys)s::text[]) as source_key
                 order by lock_key) as in_lock_order;
        select source.key, latest.load_id, latest.content_hash, latest.file_size_bytes,
               (select coalesce(json_agg(json_build_array(rejected.content_hash, rejected.load_id,
                                                          rejected.error)
                                         order by rejected.load_id), '[]')
                  from raw.load_log as rejected
                 where rejected.source_key = source.key and rejected.status = 'rejected'
                   and rejected.content_hash is not null),
               nextval(pg_get_serial_sequence('raw.load_log', 'load_id'))
          from unnest(%(keys)s::text[]) as source (key)
          left join lateral (
              select loaded.load_id, loaded.content_hash, loaded.file_size_bytes
                from raw.load_log as loaded
               where loaded.source_key = source.key and loaded.status = 'loaded'
               order by loaded.load_id desc limit 1
          ) as latest on true
        """,
        {"keys": source_keys},
    )
    return {
        key: SourceLog(
            latest=None if load_id is None else LiveLoad(load_id, content_hash, size),
            rejected={digest: (earlier_id, reason) for digest, earlier_id, reason in rejected},
            next_load_id=next_load_id,
        )
        for key, load_id, content_hash, size, rejected, next_load_id in cur.fetchall()
    }


def lock_source(cur: psycopg2.extensions.cursor, source_key: str) -> SourceLog:
    """lock_sources of one source."""
    return lock_sources(cur, [source_key])[source_key]


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


@dataclass(frozen=True)
class LoggedLoad:
    """A new load's row in raw.load_log: the file, what it was claimed as, and its outcome."""

    source: SourceFile
    digest: FileDigest | None
    claim: Claim
    result: FileResult


def _log_loads(cur: psycopg2.extensions.cursor, loads: list[LoggedLoad]) -> None:
    """Log the loads with their outcomes (a row each, in one statement, written last so that it
    is never updated). A successful replace supersedes the source's earlier live loads in the
    same transaction; merges are checked for what they cover at the end of the run."""
    rows = [
        {
            "id": load.claim.load_id,
            "key": load.source.source_key,
            "path": str(load.source.path.resolve()),
            "kind": load.source.kind.value,
            "symbol": load.source.symbol,
            "asset_type": load.source.asset_type,
            "digest": None if load.digest is None else load.digest.content_hash,
            "size": None if load.digest is None else load.digest.size,
            "status": load.result.status,
            "mode": load.claim.mode.value if load.claim.mode else None,
            "offset": load.claim.append_offset if load.claim.mode is LoadMode.APPEND else None,
            "read": load.result.rows_read,
            "loaded": load.result.rows_loaded,
            "rejected": load.result.rows_rejected,
            "blank": load.result.blank_lines,
            "error": load.result.reason,
        }
        for load in loads
    ]
    execute_values(
        cur,
        """
        insert into raw.load_log (load_id, source_key, file_path, file_kind, symbol, asset_type,
                                  content_hash, file_size_bytes, status, load_mode, append_offset_bytes,
                                  rows_read, rows_loaded, rows_rejected, blank_lines, error,
                                  started_at, finished_at)
        overriding system value
        values %s
        """,
        rows,
        template="""(%(id)s, %(key)s, %(path)s, %(kind)s, %(symbol)s, %(asset_type)s, %(digest)s,
                     %(size)s, %(status)s, %(mode)s, %(offset)s, %(read)s, %(loaded)s, %(rejected)s,
                     %(blank)s, %(error)s, now(), clock_timestamp())""",
        page_size=max(1, len(rows)),
    )
    for load in loads:
        if load.result.status == "loaded" and load.claim.mode is LoadMode.REPLACE:
            cur.execute(
                """
                update raw.load_log
                   set status = 'superseded', superseded_by = %(id)s, superseded_at = clock_timestamp()
                 where source_key = %(key)s and status = 'loaded' and load_id <> %(id)s
                """,
                {"id": load.claim.load_id, "key": load.source.source_key},
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


def _parse_from_claim(
    stream: io.BufferedReader, layout: TableLayout, rejects: RejectSink, claim: Claim
) -> CsvStream:
    """The file parsed from where its load begins: an append, after the latest load's bytes."""
    if claim.mode is LoadMode.APPEND:
        stream.seek(claim.append_offset)
        return CsvStream(stream, layout, rejects, continue_at_line=claim.first_line)
    return CsvStream(stream, layout, rejects)


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
            parsed = _parse_from_claim(stream, layout, rejects, claim)
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
            _log_loads(cur, [LoggedLoad(source, digest, claim, result)])
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


# Files are loaded many to a transaction (one lock round trip, one COPY, one log statement, one
# commit for the group): a daily refresh is thousands of files of one new line each, whose
# per-file round trips were most of its time. A group's parsed rows wait in memory up to this
# many bytes of new input; a file with more is streamed in a transaction of its own.
GROUP_BUFFER_BYTES = 8 << 20


@dataclass
class _StagedLoad:
    """A new load of a group, parsed and waiting for the group's COPY."""

    logged: LoggedLoad
    rows: list[bytes]
    rejects: RejectSink

    @property
    def layout(self) -> TableLayout:
        return LAYOUTS[self.logged.source.kind]


def load_sources(
    conn: psycopg2.extensions.connection, sources: list[SourceFile], replace: bool = False
) -> list[FileResult]:
    """Load files, each with the outcome load_source gives it and each whole or not at all, but
    many to a transaction: a run interrupted leaves whole files, and loads again what it had not
    committed. Results in the order of `sources`. A replace (rare, asked for) goes file by file."""
    if replace:
        return [load_source(conn, source, replace=True) for source in sources]
    results: list[FileResult] = []
    rest = list(sources)
    while rest:
        done, rest = _load_group(conn, rest)
        results += done
        if rest and not done:  # its new bytes alone exceed a group's buffer: streamed by itself
            results.append(load_source(conn, rest[0]))
            rest = rest[1:]
    return results


def _load_group(
    conn: psycopg2.extensions.connection, sources: list[SourceFile]
) -> tuple[list[FileResult], list[SourceFile]]:
    """Load the longest leading run of `sources` whose new rows fit the buffer, in one
    transaction; return their results and the files left for the next group."""
    results: list[FileResult] = []
    logged: list[LoggedLoad] = []
    staged: list[_StagedLoad] = []
    taken = len(sources)
    try:
        with conn, conn.cursor() as cur:
            source_logs = lock_sources(cur, [source.source_key for source in sources])
            buffered = 0
            keys_in_group: set[str] = set()
            for position, source in enumerate(sources):
                # A source twice in a group would not see its first load in its log.
                outcome = (
                    None
                    if source.source_key in keys_in_group
                    else _stage_file(source, source_logs[source.source_key], GROUP_BUFFER_BYTES - buffered)
                )
                if outcome is None:
                    taken = position
                    break
                keys_in_group.add(source.source_key)
                if isinstance(outcome, _StagedLoad):
                    staged.append(outcome)
                    buffered += sum(map(len, outcome.rows))
                    outcome = outcome.logged
                if isinstance(outcome, LoggedLoad):
                    logged.append(outcome)
                    outcome = outcome.result
                results.append(outcome)
            _write_group(cur, staged, logged)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DatabaseUnavailable(
            f"the database went away while loading a group of {taken} files, the first "
            f"{sources[0].path} ({detail}); nothing of them was written. Re-run the loader to "
            "finish: loaded files are skipped as unchanged."
        ) from None
    except psycopg2.Error:
        # The server refused the group's rows (say a character the database's encoding cannot
        # hold) and rolled it back whole: each of its files is loaded by itself, with its own
        # outcome.
        return [load_source(conn, source) for source in sources[:taken]], sources[taken:]
    finally:
        for load in staged:
            load.rejects.close()
    return results, sources[taken:]


def _stage_file(
    source: SourceFile, source_log: SourceLog, budget: int
) -> FileResult | LoggedLoad | _StagedLoad | None:
    """Under the source's lock, what a group does with a file: nothing to write (unchanged, or
    this content rejected before: its result), a rejected load to log (unreadable), or a load
    parsed into rows for the group's COPY; None when its new bytes exceed the budget left."""
    result = FileResult(path=str(source.path), status="loaded")
    latest = source_log.latest
    digest: FileDigest | None = None
    try:
        digest = file_digest(source.path, None if latest is None else latest.size)
        claim = _claim_load(source_log, digest, replace=False)
        if claim.outcome != "new":
            return _not_loaded(result, claim)
        if digest.size - claim.append_offset > budget:
            return None
        assert claim.load_id is not None
        result.load_id, result.mode = claim.load_id, claim.mode.value if claim.mode else None
        staged = _StagedLoad(LoggedLoad(source, digest, claim, result), [], RejectSink())
        try:
            _parse_into(staged)
        except BaseException:
            staged.rejects.close()
            raise
        return staged
    except READ_ERRORS as exc:
        # Gone, or not readable to its end (a truncated gzip): a rejected load, none of its rows.
        result = FileResult(path=str(source.path), status="rejected", reason=f"cannot read the file: {exc}")
        return _rejected_load(source, source_log, digest, result) or result


def _parse_into(staged: _StagedLoad) -> None:
    """Parse the file's new lines into COPY rows (a file rejected whole: its lines into the rejects)."""
    load, result = staged.logged, staged.logged.result
    assert load.claim.load_id is not None
    with open_source(load.source.path) as stream:
        parsed = _parse_from_claim(stream, staged.layout, staged.rejects, load.claim)
        if parsed.rejection is not None:
            parsed.reject_all()  # the symbol's earlier loads stay: a broken file must not wipe good data
        else:
            staged.rows = list(parsed.copy_chunks(b"%d\t" % load.claim.load_id))
            result.rows_loaded = parsed.counts.rows_accepted
        result.take_counts(parsed)


def _write_group(
    cur: psycopg2.extensions.cursor, staged: list[_StagedLoad], logged: list[LoggedLoad]
) -> None:
    """The group's rows in one COPY per raw table, its rejected lines, then its log rows."""
    for source_kind in sorted({load.logged.source.kind for load in staged}):
        loads = [load for load in staged if load.logged.source.kind == source_kind]
        expected = sum(load.logged.result.rows_loaded for load in loads)
        if not expected:
            continue
        rows = (chunk for load in loads for chunk in load.rows)
        table, columns = loads[0].layout.table, _copy_columns(loads[0].logged.source)
        cur.copy_expert(_copy_statement(table, columns, "format text, null ''"), IterReader(rows))
        if cur.rowcount != expected:
            raise RuntimeError(f"COPY stored {cur.rowcount} rows in {table}, expected {expected}")
    for load in staged:
        assert load.logged.claim.load_id is not None
        _copy_rejects(cur, load.logged.claim.load_id, load.rejects)
    if logged:
        _log_loads(cur, logged)


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
        if load := _rejected_load(source, lock_source(cur, source.source_key), digest, result):
            _log_loads(cur, [load])


def _rejected_load(
    source: SourceFile, source_log: SourceLog, digest: FileDigest | None, result: FileResult
) -> LoggedLoad | None:
    """Under the source's lock, a file rejected as a whole: a new load to log, with its load id
    on `result`; None when it is no new load: this very content was rejected before (`result`
    then says so), or what could be read of it is the latest load (`result` keeps its reason)."""
    claim = _claim_load(source_log, digest, replace=False)
    if claim.outcome == "new":
        result.load_id = claim.load_id
        return LoggedLoad(source, digest, claim, result)
    if claim.outcome == "already_rejected":
        _not_loaded(result, claim)
    return None


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
