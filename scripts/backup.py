"""A logical dump of the project database, and its restore into an empty database, the TimescaleDB way.

    python scripts/backup.py backup [--dir backups]            (make dump)
    python scripts/backup.py restore FILE [--dbname NAME]      (make restore FILE=... [DB=...])

Both connect with the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).

backup: `pg_dump -Fc` of PGDATABASE, as the database owner: one snapshot, so the file is
consistent while the loader writes. It is written under a temporary name and renamed only once
pg_dump succeeded and the archive reads back: a `*.dump` file is always whole.

restore: TimescaleDB's procedure (docs: self-hosted/backup-and-restore/logical-backup) into a
database that must be empty (created if missing; never overwritten): create the extension at
the dump's TimescaleDB version, `timescaledb_pre_restore()`, pg_restore in one transaction (an
error leaves the database as empty as it was), `timescaledb_post_restore()` (always), then the
source database's own grants, and ANALYZE. `timescaledb_pre_restore()` sets a superuser-only
parameter and pg_restore recreates chunks in TimescaleDB's own schema, so the restore itself
runs as a superuser: the caller's role if it is one, else, on the project cluster, the
cluster's bootstrap superuser over its socket (as scripts/db.sh does).

Exit codes: 0 done, 1 refused or failed (the message says why; nothing half-done is left).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql
from tqdm import tqdm

from scripts.pg_helpers import fetch, human_bytes
from warehouse_connection import db_script_env
from warehouse_connection.connect import connect as connect_to_warehouse

PROJECT_DIR = Path(__file__).resolve().parents[1]
log = logging.getLogger("backup")

# pg_dump warns that TimescaleDB's own catalog tables reference themselves. That matters for
# data-only dumps; a full dump restored with timescaledb_pre_restore() is fine (TimescaleDB's
# maintainers in timescale/timescaledb#2566 and #1581, and its troubleshooting docs).
TIMESCALEDB_CATALOG_TABLES = {"hypertable", "chunk", "continuous_agg"}
TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<rest>.*)$")


class Refused(Exception):
    """Why the command stopped, before (or instead of) changing anything: exit code 1."""


# --- shared helpers -------------------------------------------------------------------------


@contextmanager
def connection(**overrides: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection from the libpq variables (overrides win), in autocommit, closed after."""
    conn = connect_to_warehouse("stock_analytics backup", **overrides)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def pg_tool(name: str, major: int | None = None) -> str:
    """pg_dump/pg_restore of a PostgreSQL major version (Debian installs one per version under
    /usr/lib/postgresql; the one on PATH is a wrapper that may pick another), or at least as
    new. major None: the newest installed."""
    installed = {
        int(p.parts[-3]): p
        for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")
        if p.parts[-3].isdigit()
    }
    if major is None:
        major = max(installed, default=0)
    path = str(installed[major]) if major in installed else shutil.which(name)
    if path is None:
        raise Refused(f"{name} not found: install the PostgreSQL {major} client tools")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    found = int(re.search(r"\)\s+(\d+)", out).group(1))
    if found < major:
        raise Refused(f"{path} is PostgreSQL {found}; this needs {major} or newer")
    return path


def display(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def major_version(version: str) -> int:
    return int(version.split(".", maxsplit=1)[0])


def run_with_progress(
    command: list[str], env: dict[str, str], marker: str, total: int
) -> tuple[int, list[str]]:
    """Run pg_dump/pg_restore --verbose, a progress bar (on a terminal) advancing per table."""
    lines: list[str] = []
    bar = tqdm(total=total, unit="table", disable=not sys.stderr.isatty(), dynamic_ncols=True, leave=False)
    with bar, subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.rstrip("\n")
            lines.append(line)
            log.debug("%s", line)
            if marker in line:
                bar.update(1)
    return proc.returncode, lines


def messages(lines: list[str], tool: str) -> list[str]:
    """pg_dump/pg_restore's warnings and errors, without their --verbose progress lines."""
    return [
        line
        for line in lines
        if not line.startswith(f"{tool}: ") or re.match(rf"{tool}: (warning|error|detail|hint|NOTICE)", line)
    ]


# --- backup ---------------------------------------------------------------------------------


def drop_harmless_warnings(lines: list[str]) -> tuple[list[str], list[str]]:
    """pg_dump's messages without the two TimescaleDB docs call safe to ignore: circular foreign
    keys among TimescaleDB's catalog tables, and "hypertable data are in the chunks" (the data
    is dumped with the chunks). Returns what to show, and what was left out."""
    shown: list[str] = []
    catalog_tables: set[str] = set()
    chunks_notice = False
    block: list[str] = []

    def flush() -> None:
        nonlocal chunks_notice
        tables = {line.split("detail:", 1)[1].strip() for line in block if "detail:" in line}
        if tables and tables <= TIMESCALEDB_CATALOG_TABLES:
            catalog_tables.update(tables)
        elif block and "hypertable data are in the chunks" in block[0]:
            chunks_notice = True
        else:
            shown.extend(block)
        block.clear()

    for line in lines:
        if (
            "there are circular foreign-key constraints" in line
            or "hypertable data are in the chunks" in line
        ):
            flush()
            block.append(line)
        elif block and re.match(r"(pg_dump: )?(detail|hint|DETAIL|HINT):", line):
            block.append(line)
        else:
            flush()
            shown.append(line)
    flush()
    harmless = []
    if catalog_tables:
        harmless.append(
            f"circular foreign keys among TimescaleDB's catalog tables ({', '.join(sorted(catalog_tables))})"
        )
    if chunks_notice:
        harmless.append("hypertable data are in the chunks")
    return shown, harmless


def backup(out_dir: Path) -> Path:
    with connection() as conn:
        ((database, server_version, ts_version, tables, size),) = fetch(
            conn,
            """
            select current_database(), split_part(current_setting('server_version'), ' ', 1),
                   (select extversion from pg_extension where extname = 'timescaledb'),
                   (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                     where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')),
                   pg_database_size(current_database())
            """,
        )
    if ts_version is None:
        raise Refused(
            f"database {database} has no timescaledb extension: is PGDATABASE the project database?"
        )
    major = major_version(server_version)
    pg_dump = pg_tool("pg_dump", major)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{database}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump"
    partial = final.with_name(final.name + ".partial")
    if final.exists():
        raise Refused(f"{final} already exists")
    # Owner-only from the start: the file holds every row of the database.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    log.info(
        "dumping database %s (%s; PostgreSQL %s, TimescaleDB %s) ...",
        database, human_bytes(size), server_version, ts_version,
    )  # fmt: skip
    started = time.monotonic()
    try:
        # --lock-wait-timeout: fail and say so, rather than queue behind a dbt rebuild holding an
        # exclusive lock (and make every reader queue behind the dump).
        command = [pg_dump, "--format=custom", "--verbose", "--lock-wait-timeout=2min", f"--file={partial}"]
        code, lines = run_with_progress(command, dict(os.environ), "dumping contents of table", tables)
        shown, harmless = drop_harmless_warnings(messages(lines, "pg_dump"))
        for line in shown:
            log.warning("%s", line)
        if code != 0:
            raise Refused(
                f"pg_dump failed (exit code {code}); no backup written. Retry once no dbt build runs."
            )
        if harmless:
            log.info(
                "pg_dump's expected notices, harmless for a full dump restored with "
                "timescaledb_pre_restore() (see docs/operations.md): %s",
                "; ".join(harmless),
            )
        archive = read_archive(partial, pg_tool("pg_restore", major))  # it reads back whole
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    chunks = sum(1 for schema, _ in archive.tables if schema == "_timescaledb_internal")
    log.info(
        "wrote %s (%s) in %.1f s: %d tables, %d of them hypertable chunks; TimescaleDB %s",
        display(final), human_bytes(final.stat().st_size), time.monotonic() - started,
        len(archive.tables), chunks, archive.timescaledb_version,
    )  # fmt: skip
    return final


# --- reading an archive ---------------------------------------------------------------------


@dataclass
class Archive:
    """What restore needs to know of a custom-format dump, from its table of contents."""

    path: Path
    toc: list[str]  # the lines of `pg_restore --list`
    source_db: str = ""
    dumped_by: str = "0"  # pg_dump's version
    timescaledb_version: str | None = None
    schemas: dict[str, str] = field(default_factory=dict)  # schema -> owner
    tables: list[tuple[str, str]] = field(default_factory=list)
    table_data: int = 0
    owners: set[str] = field(default_factory=set)


def read_archive(path: Path, pg_restore: str) -> Archive:
    listing = subprocess.run([pg_restore, "--list", str(path)], capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise Refused(f"{path} is not a readable pg_dump custom-format archive: {listing.stderr.strip()}")
    archive = Archive(path=path, toc=listing.stdout.splitlines())
    for line in archive.toc:
        if m := re.match(r";\s+dbname: (.+)$", line):
            archive.source_db = m.group(1).strip()
        elif m := re.match(r";\s+Dumped by pg_dump version: (\d+(?:\.\d+)?)", line):
            archive.dumped_by = m.group(1)
        elif m := TOC_ENTRY.match(line):
            rest = m.group("rest")
            if not rest.endswith(" "):  # an entry without an owner ends with a space
                archive.owners.add(rest.rsplit(" ", 1)[1])
            if m2 := re.match(r"SCHEMA - (\S+) (\S+)$", rest):
                archive.schemas[m2.group(1)] = m2.group(2)
            elif m2 := re.match(r"TABLE (?!DATA )(\S+) (\S+) ", rest):
                archive.tables.append((m2.group(1), m2.group(2)))
            elif rest.startswith("TABLE DATA "):
                archive.table_data += 1
    # TimescaleDB keeps its version in its catalog table `metadata`, which the dump holds.
    command = [pg_restore, "--data-only", "--schema=_timescaledb_catalog", "--table=metadata", "--file=-"]
    metadata = subprocess.run([*command, str(path)], capture_output=True, text=True, check=False).stdout
    if m := re.search(r"^timescaledb_version\t(\S+)\t", metadata, re.MULTILINE):
        archive.timescaledb_version = m.group(1)
    return archive


def privilege_statements(pg_restore: str, archive: Archive) -> list[str]:
    """The dump's GRANT/REVOKE/ALTER DEFAULT PRIVILEGES statements, and the database's own
    grants and settings (which pg_restore emits only with --create, when it creates the
    database itself)."""
    toc = subprocess.run(
        [pg_restore, "--create", "--list", str(archive.path)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    wanted = [line for line in toc if re.match(r"\d+; \d+ \d+ (ACL|DEFAULT ACL|DATABASE PROPERTIES) ", line)]
    if not wanted:
        return []
    with tempfile.NamedTemporaryFile("w", suffix=".list") as listing:
        listing.write("\n".join(wanted) + "\n")
        listing.flush()
        out = subprocess.run(
            [pg_restore, "--create", f"--use-list={listing.name}", "--file=-", str(archive.path)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    return [
        line for line in out.splitlines() if re.match(r"(GRANT|REVOKE|ALTER DATABASE|ALTER DEFAULT) ", line)
    ]


ROLE_LIST = r"((?:\"[^\"]+\"|[\w$]+)(?:, (?:\"[^\"]+\"|[\w$]+))*)"


def roles_in(statements: list[str]) -> set[str]:
    """The roles privilege statements name: grantees, and the roles of default privileges."""
    roles = set()
    for stmt in statements:
        if not re.match(r"(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES) ", stmt):
            continue  # ALTER DATABASE ... SET x TO y names a value, not a role
        for m in re.finditer(rf"\b(?:TO|FROM|FOR ROLE) {ROLE_LIST}", stmt):
            roles.update(name.strip().strip('"') for name in m.group(1).split(","))
    return roles - {"PUBLIC"}


# --- restore --------------------------------------------------------------------------------

# What makes a database not empty: relations, functions and types no extension owns. Empty
# schemas are fine: the project creates its databases with their schemas (grant_roles.sql).
NOT_EMPTY = """
with ext_members as (
    select classid, objid from pg_depend where deptype = 'e'
), user_schemas as (
    select oid, nspname from pg_namespace
     where nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
       and nspname !~ '^pg_(toast_)?temp_'
)
select 'relation', format('%I.%I', s.nspname, c.relname)
  from pg_class c join user_schemas s on s.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
   and not exists (select from ext_members e where e.classid = 'pg_class'::regclass and e.objid = c.oid)
union all
select 'function', format('%I.%I', s.nspname, p.proname)
  from pg_proc p join user_schemas s on s.oid = p.pronamespace
 where not exists (select from ext_members e where e.classid = 'pg_proc'::regclass and e.objid = p.oid)
union all
select 'type', format('%I.%I', s.nspname, t.typname)
  from pg_type t join user_schemas s on s.oid = t.typnamespace
 where (t.typtype in ('e', 'd', 'r', 'm')
        or (t.typtype = 'c' and (select relkind from pg_class where oid = t.typrelid) = 'c'))
   and not exists (select from ext_members e where e.classid = 'pg_type'::regclass and e.objid = t.oid)
order by 1, 2
"""


def project_superuser(env: dict[str, str]) -> dict[str, str] | None:
    """The project cluster's bootstrap superuser over the cluster's socket (trust auth), when the
    libpq variables point at the running project cluster: scripts/db.sh decides, as for `env`."""
    try:
        exported = db_script_env("superuser-env", env=env)
    except subprocess.CalledProcessError:
        return None
    return {"host": exported["PGHOST"], "port": exported["PGPORT"], "user": exported["PGUSER"]}


def superuser_params(database: str) -> dict[str, str]:
    """Connection overrides that make a superuser: none if the caller is one."""
    with connection(dbname=database) as conn:
        ((is_super,),) = fetch(conn, "select rolsuper from pg_roles where rolname = current_user")
    if is_super:
        return {}
    params = project_superuser(dict(os.environ))
    if params is None:
        raise Refused(
            "restoring needs a superuser: timescaledb_pre_restore() sets timescaledb.restoring (a "
            "superuser-only parameter) and pg_restore recreates chunks in TimescaleDB's own schema. "
            f"{os.environ.get('PGUSER', 'your role')} is not one: set PGUSER and PGPASSWORD to a "
            "superuser's for the restore."
        )
    return params


def create_database_if_missing(name: str) -> bool:
    """Create the target database, owned by the caller, if it does not exist; True if created."""
    try:
        with connection(dbname=name):
            return False
    except psycopg2.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    with connection(dbname="postgres") as conn:
        fetch(conn, sql.SQL("create database {}").format(sql.Identifier(name)))
    return True


def drop_created_database(name: str) -> None:
    """Undo create_database_if_missing after a failed restore (the database is empty: the
    restore ran in one transaction)."""
    try:
        with connection(dbname="postgres") as conn:
            fetch(conn, sql.SQL("drop database {}").format(sql.Identifier(name)))
        log.info("dropped database %s again, which this restore had created", name)
    except psycopg2.Error as exc:
        log.warning("could not drop database %s, which this restore created (it is empty): %s", name, exc)


def check_timescaledb(conn: psycopg2.extensions.connection, wanted: str) -> None:
    """The dump's TimescaleDB version in the target: TimescaleDB restores only into the version
    it was dumped from (upgrade afterwards with ALTER EXTENSION timescaledb UPDATE)."""
    rows = fetch(conn, "select extversion from pg_extension where extname = 'timescaledb'")
    if not rows:
        try:
            fetch(
                conn, "set client_min_messages = warning; create extension timescaledb version %s", (wanted,)
            )
        except psycopg2.Error as exc:
            raise Refused(
                f"the dump was taken with TimescaleDB {wanted}, which this server cannot install "
                f"({(exc.pgerror or str(exc)).strip()}). Restore on a server with TimescaleDB {wanted}, "
                "then upgrade."
            ) from exc
    elif rows[0][0] != wanted:
        raise Refused(
            f"the dump was taken with TimescaleDB {wanted}; database {conn.info.dbname} has "
            f"{rows[0][0]}. TimescaleDB restores only into the version it was dumped from: restore "
            f"where {wanted} is installed, then ALTER EXTENSION timescaledb UPDATE."
        )


def restore(path: Path, database: str) -> None:
    started = time.monotonic()
    if not path.is_file():
        raise Refused(f"{path}: no such file")
    archive = read_archive(path, pg_tool("pg_restore"))
    if archive.timescaledb_version is None:
        raise Refused(f"{path} holds no TimescaleDB catalog: not a backup of this project's database")
    created = create_database_if_missing(database)
    try:
        restore_into(archive, database, created)
    except BaseException:
        if created:
            drop_created_database(database)
        raise
    log.info("done in %.1f s", time.monotonic() - started)


def restore_into(archive: Archive, database: str, created: bool) -> None:
    with connection(dbname=database) as conn:
        found = fetch(conn, NOT_EMPTY)
        if found:
            per_schema = Counter(name.split(".", 1)[0] for _, name in found)
            listed = ", ".join(f"{n} in {schema}" for schema, n in per_schema.most_common())
            objects = f"{len(found)} object{'s' if len(found) > 1 else ''}"
            raise Refused(
                f"database {database} is not empty: {objects} ({listed}). Restore only goes "
                "into an empty database and never overwrites one: choose a new name (make restore "
                "FILE=... DB=new_name), or drop this database yourself first."
            )
        ((server_version,),) = fetch(conn, "select split_part(current_setting('server_version'), ' ', 1)")
        pg_restore = pg_tool(
            "pg_restore", max(major_version(server_version), major_version(archive.dumped_by))
        )
        privileges = privilege_statements(pg_restore, archive)
        needed = sorted(archive.owners | roles_in(privileges))
        existing = {
            r for (r,) in fetch(conn, "select rolname from pg_roles where rolname = any(%s)", (needed,))
        }
    if missing := [role for role in needed if role not in existing]:
        raise Refused(
            f"the dump's objects are owned by or granted to roles this server lacks: {', '.join(missing)}. "
            "Create them first (make db-up does on the project cluster; see the README on roles)."
        )
    superuser = superuser_params(database)
    log.info(
        "restoring %s (database %s, TimescaleDB %s) into %s database %s, as %s ...",
        display(archive.path), archive.source_db, archive.timescaledb_version,
        "the new" if created else "the empty", database,
        superuser.get("user") or os.environ.get("PGUSER", "the current role"),
    )  # fmt: skip
    with connection(dbname=database, **superuser) as su:
        check_timescaledb(su, archive.timescaledb_version)
        existing_schemas = {s for (s,) in fetch(su, "select nspname from pg_namespace")}
        fetch(su, "select timescaledb_pre_restore()")
        try:
            run_pg_restore(pg_restore, archive, database, superuser, existing_schemas)
        finally:
            # Always: a database left in restoring mode has its background jobs stopped.
            fetch(su, "select timescaledb_post_restore()")
        # Schemas that existed (empty) were kept: give them the dump's owners.
        for schema in sorted(existing_schemas & archive.schemas.keys()):
            owner = archive.schemas[schema]
            fetch(
                su,
                sql.SQL("alter schema {} owner to {}").format(sql.Identifier(schema), sql.Identifier(owner)),
            )
        apply_database_privileges(su, privileges, archive.source_db, database)
        fetch(su, "analyze")  # pg_restore brings no planner statistics
        missing_tables = fetch(
            su,
            "select s || '.' || t from unnest(%s::text[], %s::text[]) as x(s, t) "
            "where to_regclass(format('%%I.%%I', s, t)) is null",
            ([s for s, _ in archive.tables], [t for _, t in archive.tables]),
        )
        ((hypertables, chunks),) = fetch(
            su,
            "select count(distinct (hypertable_schema, hypertable_name)), count(*) "
            "from timescaledb_information.chunks",
        )
    if missing_tables:
        names = ", ".join(name for (name,) in missing_tables[:10])
        raise Refused(f"pg_restore succeeded but tables of the dump are missing: {names}")
    log.info(
        "restored %d tables into %s: %d hypertable(s) with %d chunks; statistics analyzed",
        len(archive.tables), database, hypertables, chunks,
    )  # fmt: skip


def run_pg_restore(
    pg_restore: str, archive: Archive, database: str, superuser: dict[str, str], existing_schemas: set[str]
) -> None:
    """pg_restore in one transaction, stopping at the first error. Schemas that already exist
    (empty) are left out of its list: CREATE SCHEMA would fail on them. Not --jobs: TimescaleDB's
    docs say a parallel restore does not restore its catalog correctly."""
    env = dict(os.environ)
    env["PGDATABASE"] = database
    if superuser:
        env |= {"PGHOST": superuser["host"], "PGPORT": superuser["port"], "PGUSER": superuser["user"]}
        env.pop("PGPASSWORD", None)
    lines = []
    for line in archive.toc:
        m = TOC_ENTRY.match(line)
        schema = re.match(r"SCHEMA - (\S+) ", m.group("rest")) if m else None
        lines.append(f";{line}" if schema and schema.group(1) in existing_schemas else line)
    with tempfile.NamedTemporaryFile("w", suffix=".list") as listing:
        listing.write("\n".join(lines) + "\n")
        listing.flush()
        command = [
            pg_restore, "--verbose", "--exit-on-error", "--single-transaction", "--no-password",
            f"--use-list={listing.name}", f"--dbname={database}", str(archive.path),
        ]  # fmt: skip
        code, out = run_with_progress(command, env, "processing data for table", archive.table_data)
    for line in messages(out, "pg_restore"):
        log.log(logging.ERROR if code else logging.WARNING, "%s", line)
    if code != 0:
        raise Refused(
            f"pg_restore failed (exit code {code}); it ran in one transaction, so nothing was restored."
        )


def apply_database_privileges(
    conn: psycopg2.extensions.connection, statements: list[str], source: str, target: str
) -> None:
    """The source database's own grants and settings (who may connect, create schemas, ...),
    applied to the target under its name."""
    target_id = sql.Identifier(target).as_string(conn)
    for name in {sql.Identifier(source).as_string(conn), source}:
        pattern = re.compile(rf"(ON DATABASE|ALTER DATABASE) {re.escape(name)}(?=[ ;])")
        for stmt in statements:
            if pattern.search(stmt) and "timescaledb.restoring" not in stmt:
                fetch(conn, pattern.sub(lambda m: f"{m.group(1)} {target_id}", stmt))


# --- command line ---------------------------------------------------------------------------


class Formatter(logging.Formatter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        level = {logging.ERROR: "ERROR: ", logging.WARNING: "warning: "}.get(record.levelno, "")
        return f"[{self.prefix}] {level}{record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Back up the project database, or restore a backup.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show pg_dump/pg_restore's progress lines"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_backup = sub.add_parser("backup", help="pg_dump -Fc of PGDATABASE into a file named with the time")
    p_backup.add_argument(
        "--dir", type=Path, default=PROJECT_DIR / "backups", help="folder (default: backups/)"
    )
    p_restore = sub.add_parser("restore", help="restore a backup into an empty or new database")
    p_restore.add_argument("file", type=Path)
    p_restore.add_argument(
        "--dbname",
        default=os.environ.get("PGDATABASE"),
        help="target (default: PGDATABASE); created if missing",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error: 1, as every other failure (argparse says 2)
        return 1 if exc.code else 0

    handler = logging.StreamHandler()
    handler.setFormatter(Formatter(args.command))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        if args.command == "backup":
            print(display(backup(args.dir)))  # the file, for scripts
        elif not args.dbname:
            raise Refused("no target database: set PGDATABASE or pass --dbname")
        else:
            restore(args.file, args.dbname)
    except Refused as exc:
        log.error("%s", exc)
        return 1
    except psycopg2.Error as exc:
        log.error("database error: %s", (exc.pgerror or str(exc)).strip())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
