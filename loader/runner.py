"""Run a load: files spread over worker processes, progress shown, a summary kept."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg2.extensions
from tqdm import tqdm

from loader import database, history, schema
from loader.discovery import SourceFile
from loader.parsing import LAYOUTS, READ_ERRORS, CsvStream, RejectSink, open_source

log = logging.getLogger(__name__)
PROGRESS_LOG_SECONDS = 10.0


class WorkerCrashed(Exception):
    """A worker process died mid-run; the message says what to do."""


@dataclass
class RunSummary:
    dry_run: bool
    files_seen: int = 0
    files_loaded: int = 0
    files_unchanged: int = 0
    files_rejected: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    blank_lines: int = 0
    wall_seconds: float = 0.0
    rows_per_second: float = 0.0
    replace: bool = False  # --replace: every loaded file became its symbol's whole history
    files_by_mode: dict[str, int] = field(default_factory=dict)
    files_already_rejected: int = 0
    loads_superseded: int = 0  # earlier loads whose every row a load of this run supersedes
    loads_purged: int = 0
    rows_removed: int = 0  # replace: dates the symbols had and the new files do not
    rejected_files: list[dict[str, str | int | bool | None]] = field(default_factory=list)
    files_with_rejected_rows: list[dict[str, str | int | None]] = field(default_factory=list)
    replaced_histories: list[dict[str, str | int | None]] = field(default_factory=list)
    files: list[dict[str, str | int | None]] = field(default_factory=list)

    def add(self, result: database.FileResult) -> None:
        self.files.append(
            {
                "path": result.path,
                "status": result.status,
                "mode": result.mode,
                "rows_loaded": result.rows_loaded,
                "rows_rejected": result.rows_rejected,
                "load_id": result.load_id,
            }
        )
        self.rows_read += result.rows_read
        self.rows_loaded += result.rows_loaded
        self.rows_rejected += result.rows_rejected
        self.blank_lines += result.blank_lines
        if result.status == "unchanged":
            self.files_unchanged += 1
        elif result.status == "rejected":
            self.files_rejected += 1
            self.files_already_rejected += result.already_rejected
            self.rejected_files.append(
                {
                    "path": result.path,
                    "reason": result.reason,
                    "load_id": result.load_id,
                    "already_rejected": result.already_rejected,
                }
            )
        else:
            self.files_loaded += 1
            if result.mode:
                self.files_by_mode[result.mode] = self.files_by_mode.get(result.mode, 0) + 1
            if result.rows_rejected:
                self.files_with_rejected_rows.append(
                    {"path": result.path, "rows_rejected": result.rows_rejected, "load_id": result.load_id}
                )

    @property
    def exit_code(self) -> int:
        return 2 if self.files_rejected or self.rows_rejected else 0

    def write_json(self, path: Path) -> None:
        """Write atomically, so a script never reads half a summary."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)


def inspect_source(source: SourceFile) -> database.FileResult:
    """Dry run of one file: parse and count exactly as a load would, write nothing."""
    result = database.FileResult(path=str(source.path), status="loaded")
    rejects = RejectSink()
    try:
        with open_source(source.path) as stream:
            parsed = CsvStream(stream, LAYOUTS[source.kind], rejects)
            if parsed.rejection is not None:
                parsed.reject_all()
            else:
                for _ in parsed.copy_chunks(b""):
                    pass
                result.rows_loaded = parsed.counts.rows_accepted
            result.take_counts(parsed)
    except READ_ERRORS as exc:
        return database.FileResult(
            path=str(source.path), status="rejected", reason=f"cannot read the file: {exc}"
        )
    finally:
        rejects.close()
    return result


# ---- worker processes: one connection each, kept for all the files they load ----------------
# Files are loaded in groups of at most this many (database.load_sources commits a group in as
# few transactions as its buffer allows); with several workers, smaller groups when there are
# few files, so that each worker gets several.
GROUP_FILES = 64
GROUPS_PER_WORKER = 4
_worker_conn: psycopg2.extensions.connection | None = None
_worker_replace = False


def _init_worker(replace: bool) -> None:
    global _worker_conn, _worker_replace  # noqa: PLW0603 - one connection per worker process, made once
    _worker_conn = database.connect()
    _worker_replace = replace


def _load_in_worker(group: list[SourceFile]) -> list[database.FileResult]:
    assert _worker_conn is not None
    return database.load_sources(_worker_conn, group, replace=_worker_replace)


def _inspect_group(group: list[SourceFile]) -> list[database.FileResult]:
    return [inspect_source(source) for source in group]


def _groups(sources: list[SourceFile], workers: int) -> list[list[SourceFile]]:
    size = GROUP_FILES
    if workers > 1:
        size = max(1, min(GROUP_FILES, math.ceil(len(sources) / (workers * GROUPS_PER_WORKER))))
    return [sources[start : start + size] for start in range(0, len(sources), size)]


def _results_in_process(
    sources: list[SourceFile], dry_run: bool, replace: bool
) -> Iterator[database.FileResult]:
    if dry_run:
        yield from map(inspect_source, sources)
        return
    conn = database.connect()
    try:
        for group in _groups(sources, workers=1):
            yield from database.load_sources(conn, group, replace=replace)
    finally:
        conn.close()


def _results_in_pool(
    sources: list[SourceFile], workers: int, dry_run: bool, replace: bool
) -> Iterator[database.FileResult]:
    task: Callable[[list[SourceFile]], list[database.FileResult]] = (
        _inspect_group if dry_run else _load_in_worker
    )
    with ProcessPoolExecutor(
        max_workers=workers,
        initializer=None if dry_run else _init_worker,
        initargs=() if dry_run else (replace,),
    ) as pool:
        pending: set[Future[list[database.FileResult]]] = {
            pool.submit(task, group) for group in _groups(sources, workers)
        }
        try:
            while pending:
                # Each group's results as it finishes (the progress moves); a worker's exception
                # (DatabaseUnavailable) is raised here as soon as its group ends with it.
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from future.result()
        except BrokenProcessPool:
            raise WorkerCrashed(
                "a loader worker process died (killed, or out of memory); files it had not "
                "committed were rolled back. Re-run the loader to finish: loaded files are skipped."
            ) from None
        finally:
            for future in pending:
                future.cancel()


class Progress:
    """A progress bar on a terminal; a log line every few seconds otherwise (CI, cron, pipes)."""

    def __init__(self, total_files: int) -> None:
        self.interactive = sys.stderr.isatty()
        self._bar = tqdm(total=total_files, unit="file", disable=not self.interactive, dynamic_ncols=True)
        self._total_files = total_files
        self._files = 0
        self._last_log = time.monotonic()

    def update(self, summary: RunSummary) -> None:
        self._files += 1
        if self.interactive:
            self._bar.set_postfix(
                rows=f"{summary.rows_loaded:,}", rejected=summary.rows_rejected, refresh=False
            )
            self._bar.update(1)
        elif time.monotonic() - self._last_log >= PROGRESS_LOG_SECONDS or self._files == self._total_files:
            self._last_log = time.monotonic()
            log.info(
                "progress: %d/%d files, %s rows loaded",
                self._files,
                self._total_files,
                f"{summary.rows_loaded:,}",
            )

    def close(self) -> None:
        self._bar.close()


def run(
    sources: list[SourceFile],
    workers: int,
    dry_run: bool,
    replace: bool = False,
    retention_days: int = history.DEFAULT_RETENTION_DAYS,
) -> RunSummary:
    """Load (or, dry, inspect) every source; raises database.DatabaseUnavailable if the server goes.

    replace: each loaded file becomes its symbol's whole history (else appends and merges).
    retention_days: how long superseded raw rows are kept before they are purged.
    """
    started = time.perf_counter()
    summary = RunSummary(dry_run=dry_run, files_seen=len(sources), replace=replace)
    # Biggest files first, so no worker is left with a long file at the end.
    sizes = {s.path: _size_or_zero(s.path) for s in sources}
    ordered = sorted(sources, key=lambda s: sizes[s.path], reverse=True)
    if not dry_run:
        conn = database.connect()
        try:
            schema.upgrade(conn)
            # What an interrupted run left undone, and superseded rows whose retention is over.
            earlier = history.run(conn, retention_days)
        finally:
            conn.close()
    workers = max(1, min(workers, len(ordered)))
    results = (
        _results_in_process(ordered, dry_run, replace)
        if workers == 1
        else _results_in_pool(ordered, workers, dry_run, replace)
    )
    progress = Progress(len(ordered))
    try:
        for result in results:
            summary.add(result)
            progress.update(summary)
            if result.status == "rejected":
                log.warning("rejected %s: %s", result.path, result.reason)
            elif result.status == "loaded":
                log.debug("%s: %s, %d rows", result.path, result.mode, result.rows_loaded)
            elif result.rows_rejected:
                log.warning(
                    "%s: %d of %d rows rejected (see raw.load_rejects, load_id %s)",
                    result.path,
                    result.rows_rejected,
                    result.rows_read,
                    result.load_id,
                )
    finally:
        progress.close()
    if not dry_run:
        conn = database.connect()
        try:
            done = history.run(conn, retention_days)
            summary.loads_superseded = earlier.loads_superseded + done.loads_superseded
            summary.loads_purged = earlier.loads_purged + done.loads_purged
            _add_replaced_histories(conn, summary)
            analyzed = database.analyze_raw(conn, _rows_written(sources, summary))
            log.debug("analyzed %s", ", ".join(analyzed) or "nothing")
        finally:
            conn.close()
    summary.wall_seconds = round(time.perf_counter() - started, 3)
    summary.rows_per_second = (
        round(summary.rows_loaded / summary.wall_seconds, 1) if summary.wall_seconds else 0.0
    )
    return summary


def _rows_written(sources: list[SourceFile], summary: RunSummary) -> dict[str, int]:
    """Rows this run wrote to each raw table (a rejected file's log row counts as one)."""
    kinds = {str(source.path): source.kind for source in sources}
    written = {"raw.load_log": 0, **{layout.table: 0 for layout in LAYOUTS.values()}, "raw.load_rejects": 0}
    for file in summary.files:
        if file["status"] == "unchanged":
            continue
        written["raw.load_log"] += 1
        written[LAYOUTS[kinds[str(file["path"])]].table] += int(file["rows_loaded"] or 0)
        written["raw.load_rejects"] += int(file["rows_rejected"] or 0)
    return written


def _add_replaced_histories(conn: psycopg2.extensions.connection, summary: RunSummary) -> None:
    """What each replace of this run removed from its symbol's history (counted by history.run)."""
    replace_ids = [f["load_id"] for f in summary.files if f["mode"] == database.LoadMode.REPLACE]
    if not replace_ids:
        return
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            select symbol, file_path, load_id, rows_removed, removed_first_date, removed_last_date
              from raw.load_log where load_id = any(%s) and file_kind = 'prices' order by symbol
            """,
            (replace_ids,),
        )
        for symbol, path, load_id, removed, first, last in cur.fetchall():
            summary.rows_removed += removed or 0
            summary.replaced_histories.append(
                {
                    "symbol": symbol,
                    "path": path,
                    "load_id": load_id,
                    "rows_removed": removed,
                    "removed_first_date": first,
                    "removed_last_date": last,
                }
            )


def _size_or_zero(path: Path) -> int:
    """For ordering only: a file gone since discovery is rejected with its reason when loaded."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
