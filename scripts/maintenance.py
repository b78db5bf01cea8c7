"""The database owner's maintenance report, and VACUUM (ANALYZE) where it pays.

    python scripts/maintenance.py                 report only (reads statistics, changes nothing)
    python scripts/maintenance.py --vacuum        report, then VACUUM (ANALYZE) where it pays
    make maintenance                              the same as --vacuum, on the project database

Connects with the libpq variables (run it as the database owner: `eval "$(make -s env)"`).
The report: table and index sizes (a hypertable as the sum of its chunks, from TimescaleDB's
hypertable_detailed_size), hypertables with their chunk counts, chunk sizes and compression
state, indexes never scanned since the statistics were reset (unique and primary-key indexes
excluded: they enforce constraints), and per table the dead rows and the last (auto)vacuum and
(auto)analyze. How to read it: docs/operations.md.

VACUUM (ANALYZE) pays on a table (of a hypertable: on each chunk that needs it) with many
dead rows (at least --share of its rows, and --min-rows), one whose statistics are stale (as
many rows changed since its last analyze), or one of that many rows never analyzed. It is a
script, not a dbt run-operation, because VACUUM cannot run inside a transaction block and dbt
runs operations in one. On PostgreSQL 15 VACUUM needs the table's owner, the database owner or a superuser;
a role that is a member of the owner without inheriting its rights acts as it (SET ROLE).

Exit codes: 0 report done (and every VACUUM it chose ran), 2 report done but some VACUUM
could not run (it says which and why), 1 could not run. --json FILE writes everything too.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from tqdm import tqdm

from scripts.pg_helpers import fetch, human_bytes
from warehouse_connection.connect import connect as connect_to_warehouse

log = logging.getLogger("maintenance")

INTERNAL_SCHEMAS = r"^(pg_|_timescaledb_|timescaledb_)|^information_schema$"

SETTINGS = """
select current_database(), split_part(current_setting('server_version'), ' ', 1),
       (select extversion from pg_extension where extname = 'timescaledb'),
       current_setting('timescaledb.license', true),
       pg_database_size(current_database()),
       (select stats_reset from pg_stat_database where datname = current_database()),
       now()
"""

# Plain tables and materialized views outside PostgreSQL's and TimescaleDB's own schemas (a
# hypertable's chunks live in TimescaleDB's; the hypertable is reported whole, below). Sizes
# as hypertable_detailed_size splits them: heap, indexes, TOAST (with its index).
TABLES = """
select c.oid, format('%%I.%%I', n.nspname, c.relname),
       case c.relkind when 'm' then 'materialized view' else 'table' end,
       pg_get_userbyid(c.relowner),
       pg_table_size(c.oid) - coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       pg_indexes_size(c.oid),
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0),
       pg_total_relation_size(c.oid)
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'm')
   and n.nspname !~ %(internal)s
   and not exists (select from _timescaledb_catalog.hypertable h
                    where h.schema_name = n.nspname and h.table_name = c.relname)
"""

HYPERTABLES = """
select c.oid, format('%%I.%%I', h.hypertable_schema, h.hypertable_name), h.owner::text,
       d.table_bytes, d.index_bytes, d.toast_bytes, d.total_bytes,
       h.compression_enabled,
       (select count(*) from timescaledb_information.chunks ch
         where ch.hypertable_schema = h.hypertable_schema and ch.hypertable_name = h.hypertable_name),
       (select count(*) filter (where ch.is_compressed) from timescaledb_information.chunks ch
         where ch.hypertable_schema = h.hypertable_schema and ch.hypertable_name = h.hypertable_name),
       (select coalesce(dim.time_interval::text, dim.integer_interval::text)
          from timescaledb_information.dimensions dim
         where dim.hypertable_schema = h.hypertable_schema and dim.hypertable_name = h.hypertable_name
           and dim.dimension_number = 1),
       (select min(s.total_bytes) from chunks_detailed_size(c.oid) s),
       (select max(s.total_bytes) from chunks_detailed_size(c.oid) s),
       (select min(coalesce(ch.range_start::text, ch.range_start_integer::text))
          from timescaledb_information.chunks ch
         where ch.hypertable_schema = h.hypertable_schema and ch.hypertable_name = h.hypertable_name),
       (select max(coalesce(ch.range_end::text, ch.range_end_integer::text))
          from timescaledb_information.chunks ch
         where ch.hypertable_schema = h.hypertable_schema and ch.hypertable_name = h.hypertable_name),
       (select format('%%I.%%I', ca.view_schema, ca.view_name)
          from timescaledb_information.continuous_aggregates ca
         where ca.materialization_hypertable_schema = h.hypertable_schema
           and ca.materialization_hypertable_name = h.hypertable_name)
  from timescaledb_information.hypertables h
  join pg_namespace n on n.nspname = h.hypertable_schema
  join pg_class c on c.relnamespace = n.oid and c.relname = h.hypertable_name
 cross join lateral hypertable_detailed_size(c.oid) d
"""

COMPRESSION_STATS = """
select number_compressed_chunks, before_compression_total_bytes, after_compression_total_bytes
  from hypertable_compression_stats(%s::oid::regclass)
"""

# The vacuum/analyze statistics of every table reported and of every hypertable chunk; a
# chunk carries its hypertable's name (the unit vacuum decisions are reported in).
TABLE_STATS = """
select s.relid, s.schemaname, s.relname, format('%%I.%%I', s.schemaname, s.relname),
       ht.name, pg_get_userbyid(c.relowner),
       s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       pg_has_role(c.relowner, 'USAGE') or pg_has_role(d.datdba, 'USAGE') as can_vacuum,
       pg_has_role(c.relowner, 'MEMBER') as can_set_role
  from pg_stat_user_tables s
  join pg_class c on c.oid = s.relid
  join pg_database d on d.datname = current_database()
  left join lateral (
      select format('%%I.%%I', h.schema_name, h.table_name) as name
        from _timescaledb_catalog.chunk ch
        join _timescaledb_catalog.hypertable h on h.id = ch.hypertable_id
       where ch.schema_name = s.schemaname and ch.table_name = s.relname and not ch.dropped
  ) ht on true
 where s.schemaname !~ %(internal)s or ht.name is not null
"""

# Indexes of the tables reported, and of hypertables: a hypertable's index is the sum of its
# chunks' indexes (size from hypertable_index_size, scans through TimescaleDB's catalog).
INDEXES = """
with idx as (
    select i.indexrelid, i.indrelid, i.indisunique, i.indisprimary,
           exists (select from pg_constraint k where k.conindid = i.indexrelid) as enforces_constraint,
           h.id as hypertable_id
      from pg_index i
      join pg_class t on t.oid = i.indrelid
      join pg_namespace n on n.oid = t.relnamespace
      left join _timescaledb_catalog.hypertable h on h.schema_name = n.nspname and h.table_name = t.relname
     where n.nspname !~ %(internal)s
)
select format('%%I.%%I', n.nspname, ic.relname), format('%%I.%%I', n.nspname, t.relname),
       case when idx.hypertable_id is null then pg_relation_size(idx.indexrelid)
            else hypertable_index_size(idx.indexrelid) end,
       coalesce(s.idx_scan, 0) + coalesce((
           select sum(cs.idx_scan)::bigint
             from _timescaledb_catalog.chunk_index ci
             join _timescaledb_catalog.chunk ch on ch.id = ci.chunk_id
             join pg_stat_user_indexes cs
               on cs.schemaname = ch.schema_name and cs.relname = ch.table_name
              and cs.indexrelname = ci.index_name
            where ci.hypertable_id = idx.hypertable_id and ci.hypertable_index_name = ic.relname), 0),
       idx.indisunique, idx.indisprimary, idx.enforces_constraint
  from idx
  join pg_class ic on ic.oid = idx.indexrelid
  join pg_class t on t.oid = idx.indrelid
  join pg_namespace n on n.oid = t.relnamespace
  left join pg_stat_user_indexes s on s.indexrelid = idx.indexrelid
"""


@dataclass
class Table:
    """A table, materialized view or hypertable (its chunks summed), with its statistics."""

    name: str
    kind: str
    owner: str
    table_bytes: int
    index_bytes: int
    toast_bytes: int
    total_bytes: int
    live_rows: int = 0
    dead_rows: int = 0
    changed_since_analyze: int = 0
    last_vacuum: datetime | None = None
    last_autovacuum: datetime | None = None
    last_analyze: datetime | None = None
    last_autoanalyze: datetime | None = None
    chunks: int | None = None


@dataclass
class Hypertable:
    name: str
    chunks: int
    compressed_chunks: int
    compression_enabled: bool
    chunk_interval: str | None
    smallest_chunk_bytes: int | None
    largest_chunk_bytes: int | None
    range_start: str | None
    range_end: str | None
    total_bytes: int
    continuous_aggregate: str | None = None
    compression: dict[str, int] | None = None  # before/after bytes, where the license allows


@dataclass
class Index:
    name: str
    table: str
    bytes: int
    scans: int
    unique: bool
    primary: bool
    enforces_constraint: bool

    @property
    def unused(self) -> bool:
        return self.scans == 0 and not (self.unique or self.primary or self.enforces_constraint)


@dataclass
class Vacuum:
    """One VACUUM (ANALYZE) the report chose: a table, or a chunk of a hypertable."""

    relid: int
    schema: str  # what VACUUM runs on: schema.name
    name: str
    table: str  # the table as reported (a chunk's hypertable)
    reason: str
    dead_before: int
    owner: str
    can_vacuum: bool
    can_set_role: bool
    status: str = "planned"  # planned, vacuumed, skipped, failed
    dead_after: int | None = None
    seconds: float | None = None
    detail: str = ""


@dataclass
class Thresholds:
    share: float  # of a table's rows dead, or changed since its last analyze
    min_rows: int  # and at least this many rows


@dataclass
class Report:
    database: str
    server_version: str
    timescaledb_version: str | None
    license: str | None
    database_bytes: int
    stats_reset: datetime | None
    generated_at: datetime
    tables: list[Table] = field(default_factory=list)
    hypertables: list[Hypertable] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    vacuums: list[Vacuum] = field(default_factory=list)
    vacuum_candidates: int = 0  # tables and chunks looked at
    thresholds: Thresholds | None = None


# --- collecting -----------------------------------------------------------------------------


def vacuum_reason(live: int, dead: int, changed: int, analyzed: bool, limits: Thresholds) -> str | None:
    """Why VACUUM (ANALYZE) pays on a table (or chunk), or None when it does not: never for
    fewer than min_rows rows concerned, where planner estimates and bloat hardly matter."""
    if dead >= limits.min_rows and dead >= limits.share * (live + dead):
        return f"{dead:,} dead rows ({dead / (live + dead):.0%})"
    if not analyzed and live >= limits.min_rows:
        return "never analyzed"
    if changed >= limits.min_rows and changed >= limits.share * live:
        return f"{changed:,} rows changed since the last analyze ({changed / max(live, 1):.0%})"
    return None


def collect(conn: psycopg2.extensions.connection, limits: Thresholds) -> Report:
    ((database, version, ts_version, license_, size, stats_reset, now),) = fetch(conn, SETTINGS)
    report = Report(database, version, ts_version, license_, size, stats_reset, now, thresholds=limits)
    params = {"internal": INTERNAL_SCHEMAS}
    tables: dict[str, Table] = {}
    for _oid, name, kind, owner, *sizes in fetch(conn, TABLES, params):
        tables[name] = Table(name, kind, owner, *sizes)
    if ts_version is not None:
        for row in fetch(conn, HYPERTABLES, params):
            oid, name, owner, t_bytes, i_bytes, toast, total, compression, chunks, compressed, *rest = row
            interval, smallest, largest, start, end, cagg = rest
            tables[name] = Table(name, "hypertable", owner, t_bytes, i_bytes, toast, total, chunks=chunks)
            ht = Hypertable(
                name, chunks, compressed, compression, interval, smallest, largest, start, end, total, cagg
            )
            if compression and license_ != "apache":
                ((n_compressed, before, after),) = fetch(conn, COMPRESSION_STATS, (oid,)) or [(0, 0, 0)]
                ht.compression = {"compressed_chunks": n_compressed or 0, "before_bytes": before or 0,
                                  "after_bytes": after or 0}  # fmt: skip
            report.hypertables.append(ht)
    stats: dict[str, list[tuple]] = {}
    for row in fetch(conn, TABLE_STATS, params):
        relid, schema, name, relation, hypertable, owner, live, dead, changed, *stamps, can_vac, can_set = row
        table = tables.get(hypertable or relation)
        if table is None:
            continue
        stats.setdefault(table.name, []).append((live, dead, changed, *stamps))
        report.vacuum_candidates += 1
        analyzed = stamps[2] is not None or stamps[3] is not None
        if reason := vacuum_reason(live, dead, changed, analyzed, limits):
            report.vacuums.append(
                Vacuum(relid, schema, name, table.name, reason, dead, owner, can_vac, can_set)
            )
    for name, rows in stats.items():
        add_stats(tables[name], rows)
    report.tables = sorted(tables.values(), key=lambda t: (-t.total_bytes, t.name))
    report.indexes = [Index(*row) for row in fetch(conn, INDEXES, params)]
    report.indexes.sort(key=lambda i: (-i.bytes, i.name))
    return report


def add_stats(table: Table, rows: list[tuple]) -> None:
    """A table's statistics from its row of pg_stat_user_tables, a hypertable's from its
    chunks': rows summed, each last (auto)vacuum/analyze the oldest chunk's (never, if a chunk
    never had one), which is when the hypertable was last done whole."""
    table.live_rows = sum(r[0] for r in rows)
    table.dead_rows = sum(r[1] for r in rows)
    table.changed_since_analyze = sum(r[2] for r in rows)
    for i, name in enumerate(("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"), start=3):
        stamps = [r[i] for r in rows]
        setattr(table, name, None if None in stamps else min(stamps))


# --- vacuuming ------------------------------------------------------------------------------


def run_vacuums(conn: psycopg2.extensions.connection, vacuums: list[Vacuum]) -> None:
    """VACUUM (ANALYZE) each chosen table, each in its own statement (VACUUM cannot run in a
    transaction block: the connection is in autocommit)."""
    for vac in tqdm(vacuums, unit="table", disable=not sys.stderr.isatty(), leave=False):
        if not vac.can_vacuum and not vac.can_set_role:
            vac.status = "skipped"
            vac.detail = f"needs the owner ({vac.owner}), the database owner or a superuser"
            continue
        relation = sql.Identifier(vac.schema, vac.name)
        del conn.notices[:]
        started = time.monotonic()
        try:
            if not vac.can_vacuum:  # a member of the owner that does not inherit its rights
                fetch(conn, sql.SQL("set role {}").format(sql.Identifier(vac.owner)))
            fetch(conn, sql.SQL("vacuum (analyze) {}").format(relation))
        except psycopg2.Error as exc:
            vac.status, vac.detail = "failed", (exc.pgerror or str(exc)).strip()
            continue
        finally:
            fetch(conn, "reset role")
        vac.seconds = time.monotonic() - started
        skipped = [n.strip() for n in conn.notices if "skipping" in n]
        if skipped:  # PostgreSQL skips a table it may not vacuum with a warning, not an error
            vac.status, vac.detail = "skipped", skipped[0]
            continue
        vac.status = "vacuumed"
        rows = fetch(conn, "select n_dead_tup from pg_stat_user_tables where relid = %s", (vac.relid,))
        vac.dead_after = rows[0][0] if rows else None


# --- rendering ------------------------------------------------------------------------------


def ago(stamp: datetime | None, now: datetime) -> str:
    if stamp is None:
        return "never"
    seconds = (now - stamp).total_seconds()
    for limit, unit, per_unit in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / per_unit:.0f} {unit} ago"
    return f"{seconds / 86400:.0f} d ago"


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], right: set[int] | None = None) -> str:
    """An aligned text table; columns in `right` (numbers) aligned right."""
    right = right or set()
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        out = [
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def text(report: Report, top: int | None) -> str:
    """The report as aligned text tables; `top`: how many tables to list (None: all)."""
    shown = report.tables if top is None else report.tables[:top]
    out = [
        f"Maintenance report: database {report.database}, {report.generated_at:%Y-%m-%d %H:%M:%S %Z}",
        f"PostgreSQL {report.server_version}, TimescaleDB {report.timescaledb_version or 'not installed'} "
        f"({report.license or '-'} license); database size {human_bytes(report.database_bytes)}",
        "",
        f"Tables by total size ({len(report.tables)} tables; a hypertable's sizes are its chunks' summed)",
        render(
            ["table", "kind", "rows (est.)", "total", "table", "indexes", "toast"],
            [size_row(t) for t in shown],
            right={2, 3, 4, 5, 6},
        ),
    ]
    if rest := report.tables[len(shown) :]:
        total = human_bytes(sum(t.total_bytes for t in rest))
        out.append(f"... and {len(rest)} smaller tables, {total} in all (--all lists them)")
    out += ["", *hypertable_section(report), "", *index_section(report), "", *vacuum_section(report, shown)]
    return "\n".join(out)


def size_row(t: Table) -> list[str]:
    kind = t.kind + (f" ({t.chunks} chunks)" if t.chunks is not None else "")
    sizes = (t.total_bytes, t.table_bytes, t.index_bytes, t.toast_bytes)
    return [t.name, kind, f"{t.live_rows:,}", *map(human_bytes, sizes)]


def hypertable_section(report: Report) -> list[str]:
    if not report.hypertables:
        return ["Hypertables: none"]
    rows = []
    for h in report.hypertables:
        name = h.name + (
            f" (continuous aggregate {h.continuous_aggregate})" if h.continuous_aggregate else ""
        )
        span = f"{(h.range_start or '-')[:10]} .. {(h.range_end or '-')[:10]}"
        rows.append(
            [name, h.chunks, f"{h.compressed_chunks} of {h.chunks}", h.chunk_interval or "-",
             human_bytes(h.smallest_chunk_bytes), human_bytes(h.largest_chunk_bytes), span]
        )  # fmt: skip
    lines = [
        "Hypertables",
        render(
            [
                "hypertable",
                "chunks",
                "compressed",
                "chunk interval",
                "smallest chunk",
                "largest chunk",
                "range",
            ],
            rows,
            right={1, 2, 4, 5},
        ),
    ]
    for h in report.hypertables:
        if h.compression:
            before, after = h.compression["before_bytes"], h.compression["after_bytes"]
            ratio = f", {before / after:.1f}x smaller" if after else ""
            lines.append(
                f"  {h.name}: compressed chunks {human_bytes(before)} before, "
                f"{human_bytes(after)} after{ratio}"
            )
        elif report.license == "apache":
            lines.append(f"  {h.name}: compression is not available under the apache license")
        else:
            lines.append(f"  {h.name}: compression not enabled")
    return lines


def index_section(report: Report) -> list[str]:
    since = (
        f"since {report.stats_reset:%Y-%m-%d %H:%M %Z}" if report.stats_reset else "since statistics began"
    )
    unused = [i for i in report.indexes if i.unused]

    def kind(i: Index) -> str:
        if i.primary:
            return "primary key"
        if i.unique or i.enforces_constraint:
            return "constraint"
        return "UNUSED" if i.unused else ""

    rows = [[i.name, i.table, human_bytes(i.bytes), f"{i.scans:,}", kind(i)] for i in report.indexes]
    listed = f": {', '.join(i.name for i in unused)}" if unused else ""
    return [
        f"Indexes (scans {since}; a hypertable's index summed over its chunks)",
        render(["index", "table", "size", "scans", "note"], rows, right={2, 3}),
        f"Unused indexes (never scanned, enforcing no constraint): {len(unused)}, "
        f"{human_bytes(sum(i.bytes for i in unused))}{listed}",
    ]


VACUUM_HEADERS = ("table", "live rows", "dead rows", "dead", "changed", "last vacuum", "last analyze")


def latest(manual: datetime | None, auto: datetime | None, now: datetime) -> str:
    """The later of a manual and an automatic run, marked (auto) if it was autovacuum's."""
    if auto is not None and (manual is None or auto > manual):
        return f"{ago(auto, now)} (auto)"
    return ago(manual, now)


def vacuum_section(report: Report, shown: list[Table]) -> list[str]:
    now = report.generated_at
    rows = []
    for t in shown:
        share = f"{t.dead_rows / (t.live_rows + t.dead_rows):.0%}" if t.live_rows + t.dead_rows else "-"
        rows.append(
            [t.name, f"{t.live_rows:,}", f"{t.dead_rows:,}", share, f"{t.changed_since_analyze:,}",
             latest(t.last_vacuum, t.last_autovacuum, now), latest(t.last_analyze, t.last_autoanalyze, now)]
        )  # fmt: skip
    limits = report.thresholds
    lines = [
        "Vacuum and analyze (changed: rows changed since the last analyze; a hypertable: its chunks' "
        "rows summed, the oldest chunk's times)",
        render(
            VACUUM_HEADERS,
            rows,
            right={1, 2, 3, 4},
        ),
        "",
        f"VACUUM (ANALYZE) where it pays: a table or chunk with at least {limits.share:.0%} and "
        f"{limits.min_rows:,} of its rows dead,",
        "  or changed since its last analyze, or with as many rows never analyzed",
    ]
    if not report.vacuums:
        lines.append(
            f"nothing to do: all {report.vacuum_candidates} tables and chunks are below the thresholds"
        )
        return lines
    rows = []
    for v in report.vacuums:
        where = v.table if f"{v.schema}.{v.name}" == v.table else f"{v.table} chunk {v.name}"
        if v.status == "planned":
            result = "would vacuum (run with --vacuum)"
        elif v.status == "vacuumed":
            result = f"vacuumed in {v.seconds:.2f} s: dead rows {v.dead_before:,} -> {v.dead_after or 0:,}"
        else:
            result = f"{v.status.upper()}: {v.detail}"
        rows.append([where, v.reason, result])
    lines.append(render(["table", "why", "result"], rows))
    lines.append(
        f"left alone: {report.vacuum_candidates - len(report.vacuums)} tables and chunks below the thresholds"
    )
    return lines


def as_json(report: Report) -> str:
    data = asdict(report)
    for index, item in zip(data["indexes"], report.indexes, strict=True):
        index["unused"] = item.unused
    return json.dumps(data, default=str, indent=2)


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Maintenance report, and VACUUM (ANALYZE) where it pays.")
    parser.add_argument("--vacuum", action="store_true", help="run VACUUM (ANALYZE) where it pays")
    parser.add_argument(
        "--share",
        type=float,
        default=0.10,
        help="share of a table's rows dead or changed that pays (default 0.10)",
    )
    parser.add_argument(
        "--min-rows", type=int, default=1000, help="and at least this many rows (default 1000)"
    )
    parser.add_argument("--top", type=int, default=20, help="tables listed, by size (default 20)")
    parser.add_argument("--all", action="store_true", help="list every table")
    parser.add_argument("--json", type=Path, help="also write the whole report as JSON to this file")
    try:
        args = parser.parse_args(argv)
        if not 0 < args.share <= 1 or args.min_rows < 0:
            parser.error("--share must be in (0, 1] and --min-rows >= 0")
    except SystemExit as exc:  # a usage error could not run: 1 (argparse says 2, which means skipped here)
        return 1 if exc.code else 0
    logging.basicConfig(level=logging.INFO, format="[maintenance] %(message)s")

    try:
        conn = connect_to_warehouse("stock_analytics maintenance")
    except psycopg2.Error as exc:
        log.error("ERROR: cannot connect: %s", str(exc).strip())
        return 1
    conn.autocommit = True  # VACUUM refuses to run in a transaction block
    try:
        report = collect(conn, Thresholds(args.share, args.min_rows))
        if args.vacuum:
            run_vacuums(conn, report.vacuums)
    except psycopg2.Error as exc:
        log.error("ERROR: %s", (exc.pgerror or str(exc)).strip())
        return 1
    finally:
        conn.close()
    print(text(report, None if args.all else args.top))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(as_json(report))
    return 2 if any(v.status in {"skipped", "failed"} for v in report.vacuums) else 0


if __name__ == "__main__":
    sys.exit(main())
