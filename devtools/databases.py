"""Throwaway databases on the test server, and the loader and dbt run against them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extensions

from devtools.dbt_commands import dbt_fork_server
from devtools.project import COMPONENT_ROLES, DBT, GRANT_ROLES_SQL, LOADER, PROJECT_DIR
from warehouse_connection import connection_params, db_script_env


def server_env() -> dict[str, str]:
    """The libpq variables of the server to test on: the caller's, else the project cluster's."""
    env = dict(os.environ)
    if "PGHOST" not in env:
        env |= db_script_env("env")
    return env


def role_credentials(role: str) -> dict[str, str]:
    """PGUSER and PGPASSWORD of a component role (scripts/db.sh keeps its password)."""
    if role not in COMPONENT_ROLES:
        raise ValueError(f"unknown role {role!r}")
    env = db_script_env("env", role)
    return {"PGUSER": env["PGUSER"], "PGPASSWORD": env["PGPASSWORD"]}


@dataclass
class Database:
    """A database of its own on the test server; the loader and dbt are pointed at it."""

    name: str
    env: dict[str, str]
    work_dir: Path
    build_results: dict[str, Any] | None = None  # run_results.json of the fixture's dbt build
    _conn: psycopg2.extensions.connection | None = field(default=None, repr=False)

    def role_env(self, role: str) -> dict[str, str]:
        """This database's environment, logged in as a component role (loader, transformer,
        reader, streamer) instead of the owner."""
        return {**self.env, **role_credentials(role)}

    def connect(self, role: str | None = None) -> psycopg2.extensions.connection:
        """A connection as the owner, or as a component role."""
        env = self.env if role is None else self.role_env(role)
        conn = psycopg2.connect(**connection_params(env, dbname=self.name))
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        with self._conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def frame(self, sql: str, role: str | None = None) -> pd.DataFrame:
        """A query's rows as a DataFrame, on a connection of its own (as the owner or a role)."""
        conn = self.connect(role)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
        finally:
            conn.close()

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def run(
        self, command: list[str], timeout: float, role: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A command against this database (as the owner, or a component role), from the
        project folder, its output captured."""
        return subprocess.run(
            command,
            check=False,  # callers assert on the return code
            env=self.env if role is None else self.role_env(role),
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def run_loader(
        self, *args: str | Path, timeout: float = 600, role: str = "loader"
    ) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, str(LOADER), *map(str, args)], timeout, role)

    def load_summary(self, *args: str | Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """Run the loader with --summary-json and return the process and the parsed summary."""
        path = self.work_dir / f"summary-{uuid.uuid4().hex[:8]}.json"
        proc = self.run_loader(*args, "--summary-json", path)
        summary = json.loads(path.read_text()) if path.exists() else {}
        return proc, summary

    def dbt(
        self, *args: str, timeout: float = 900, role: str = "transformer"
    ) -> subprocess.CompletedProcess[str]:
        """A dbt command as the `dbt` executable runs it, in a child of the warmed-up fork
        server (devtools/dbt_fork_server.py: seconds less a command); with
        STOCK_ANALYTICS_TEST_DBT_SUBPROCESS=1, the executable itself."""
        if os.environ.get("STOCK_ANALYTICS_TEST_DBT_SUBPROCESS") == "1":
            return self.run([str(DBT), *args], timeout, role)
        env = self.env if role is None else self.role_env(role)
        return dbt_fork_server().run(list(args), env, PROJECT_DIR, timeout)

    def dbt_results(self) -> dict[str, Any]:
        """The run_results.json of this database's last dbt command."""
        return json.loads((self.work_dir / "target" / "run_results.json").read_text())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def database_env(name: str, work_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the server's database `name`, for psql, the loader and dbt (which
    writes its target/ and logs/ under work_dir)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return {
        **(server_env() if env is None else env),
        "PGDATABASE": name,
        "DBT_PROFILES_DIR": str(PROJECT_DIR),
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONUNBUFFERED": "1",
    }


def create_database(
    work_dir: Path, prefix: str = "stock_analytics_test", encoding: str | None = None
) -> Database:
    """A fresh database with TimescaleDB; dbt writes its target/ and logs/ under work_dir."""
    env = server_env()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(**connection_params(env, dbname=env.get("PGDATABASE", "postgres")))
    admin.autocommit = True
    with admin.cursor() as cur:
        options = f" encoding '{encoding}' template template0" if encoding else ""
        cur.execute(f'create database "{name}"{options}')
    admin.close()
    db = Database(name=name, env=database_env(name, work_dir, env), work_dir=work_dir)
    db.query("set client_min_messages = warning; create extension if not exists timescaledb")
    # As every project database: the component roles own and may use what their job needs.
    db.query(GRANT_ROLES_SQL.read_text())
    return db


def _admin_connection(env: dict[str, str]) -> psycopg2.extensions.connection:
    """An autocommit connection to the server's own database (the caller's PGDATABASE)."""
    conn = psycopg2.connect(**connection_params(env, dbname=server_env().get("PGDATABASE", "postgres")))
    conn.autocommit = True
    return conn


def close_as_template(db: Database) -> None:
    """Make db a template: no one may connect to it any more, so it can be copied at any time.

    An ordinary database cannot be a reliable source of `create database ... template`: the copy
    needs no one connected to the source, and TimescaleDB's background scheduler keeps a
    connection open on every database that allows connections. With datallowconn = false it
    cannot connect again; the one already there runs as the bootstrap superuser, which the
    owner may not end, so the project cluster's superuser (scripts/db.sh superuser-env) ends it.
    Set after the database is built: from now on only copy_database and drop_database use it.
    """
    db.close()
    admin = _admin_connection(db.env)
    try:
        with admin.cursor() as cur:
            cur.execute(f'alter database "{db.name}" with allow_connections false')
            cur.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid() "
                "and pg_has_role(current_user, usename, 'member')",
                (db.name,),
            )
    finally:
        admin.close()
    _end_scheduler(db)


def _end_scheduler(db: Database) -> None:
    """End TimescaleDB's scheduler on db, as the project cluster's superuser; on another server
    (no superuser here) the copy waits for it and says why when it cannot."""
    try:
        superuser = db_script_env("superuser-env", env=db.env)
    except subprocess.CalledProcessError:
        return
    conn = psycopg2.connect(**connection_params(superuser, dbname="postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (db.name,),
            )
    finally:
        conn.close()


def copy_database(
    template: Database, work_dir: Path, prefix: str = "stock_analytics_test", attempts: int = 10
) -> Database:
    """A database of its own copied from template (see close_as_template), with its rows, dbt's
    relations and the fixture's build results; dbt writes its target/ and logs/ under work_dir."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = _admin_connection(template.env)
    try:
        with admin.cursor() as cur:
            for attempt in range(attempts):
                try:
                    cur.execute(f'create database "{name}" template "{template.name}"')
                    break
                except psycopg2.errors.ObjectInUse as exc:
                    # A session still on the template (PostgreSQL waits 5 s for it first): one
                    # that close_as_template did not end, such as a scheduler on its way out.
                    if attempt == attempts - 1:
                        raise RuntimeError(
                            f"cannot copy the template database {template.name}: {exc.pgerror.strip()} "
                            "(TimescaleDB's scheduler, which only a superuser may end: run the tests "
                            "on the project cluster, make db-up)"
                        ) from exc
                    _end_scheduler(template)
                    time.sleep(1)
    finally:
        admin.close()
    db = Database(
        name=name,
        env=database_env(name, work_dir, template.env),
        work_dir=work_dir,
        build_results=template.build_results,
    )
    # Database-level grants are not copied with the contents (they are the database's own).
    db.query(GRANT_ROLES_SQL.read_text())
    return db


def drop_database(db: Database, attempts: int = 50) -> None:
    """Drop a test database. Not WITH (FORCE): that would have to signal the server's own
    workers (autovacuum, TimescaleDB's scheduler), which a non-superuser may not; a plain
    DROP stops those itself, so end our own sessions and retry while it is still in use."""
    db.close()
    admin = _admin_connection(db.env)
    try:
        with admin.cursor() as cur:
            for attempt in range(attempts):
                cur.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = %s and pid <> pg_backend_pid() "
                    "and pg_has_role(current_user, usename, 'member')",
                    (db.name,),
                )
                try:
                    cur.execute(f'drop database if exists "{db.name}"')
                    return
                except psycopg2.errors.ObjectInUse:
                    if attempt == attempts - 1:
                        raise
                    time.sleep(0.2)
    finally:
        admin.close()


def timescaledb_license(db: Database) -> str | None:
    """The TimescaleDB license of db's server: 'timescale' (community) or 'apache'."""
    return db.scalar("select current_setting('timescaledb.license', true)")


def server_license(env: dict[str, str] | None = None) -> str | None:
    """The TimescaleDB license of the test server (server_env()), None without TimescaleDB.
    Raises psycopg2.OperationalError when the server does not answer."""
    env = server_env() if env is None else env
    conn = psycopg2.connect(
        **connection_params(env, dbname=env.get("PGDATABASE", "postgres")), connect_timeout=10
    )
    try:
        with conn.cursor() as cur:
            cur.execute("select current_setting('timescaledb.license', true)")
            return cur.fetchone()[0]
    finally:
        conn.close()
