"""The raw schema's versioned migrations: applied in order, each once, at the start of a load.

A migration is `migrations/NNNN_name.sql`. `raw.schema_migrations` records what was applied,
so an existing database upgrades in place; one made by release 0.1 (before migrations existed)
has the tables of migration 1, which is written to be re-runnable for exactly that case.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2.errors
import psycopg2.extensions

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
# Any constant works; it only has to be the same for every loader process.
SCHEMA_LOCK_KEY = 0x5354_4F43


class SchemaError(Exception):
    """The raw schema cannot be created or upgraded; the message says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match is None:
            raise SchemaError(f"{path}: a migration is named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"migrations must be numbered 1, 2, 3, ... without gaps; found {versions}")
    return found


def upgrade(conn: psycopg2.extensions.connection) -> list[int]:
    """Bring the raw schema to the latest version; returns the versions applied now.

    All in one transaction with their records (PostgreSQL's DDL is transactional): a crash or
    an error leaves the schema as it was.
    """
    applied_now = []
    with conn, conn.cursor() as cur:
        # Two loaders starting at once must not both migrate.
        cur.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        cur.execute("set local client_min_messages = warning")
        _ensure_raw_schema(cur)
        cur.execute(
            "select to_regclass('raw.schema_migrations') is null, to_regclass('raw.load_log') is not null"
        )
        untracked, has_tables = cur.fetchone()
        cur.execute(
            """
            create table if not exists raw.schema_migrations (
                version    integer primary key,
                name       text not null,
                applied_at timestamptz not null default clock_timestamp()
            )
            """
        )
        if untracked and has_tables:
            # Made by release 0.1, before migrations were recorded: it is at version 1.
            cur.execute("insert into raw.schema_migrations (version, name) values (1, 'raw_layer')")
        cur.execute("select version from raw.schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for migration in migrations():
            if migration.version in done:
                continue
            log.info("raw schema: applying migration %d (%s)", migration.version, migration.name)
            cur.execute(migration.path.read_text())
            cur.execute(
                "insert into raw.schema_migrations (version, name) values (%s, %s)",
                (migration.version, migration.name),
            )
            applied_now.append(migration.version)
    return applied_now


def _ensure_raw_schema(cur: psycopg2.extensions.cursor) -> None:
    cur.execute("select to_regnamespace('raw') is not null")
    if cur.fetchone()[0]:
        return
    try:
        cur.execute("create schema raw")
    except psycopg2.errors.InsufficientPrivilege:
        raise SchemaError(
            "schema raw does not exist and this role may not create it. Set up the roles first: "
            "make db-up (the project cluster) or scripts/db.sh roles (your own server)."
        ) from None
