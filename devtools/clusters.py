"""A PostgreSQL cluster of a test's or a benchmark's own, made and run by the project's scripts
(db.sh, replica.sh, pitr.sh) as a user would: its own state folder under .local/ and a free port."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg2
import psycopg2.extensions

from devtools.ports import free_port
from devtools.project import PROJECT_DIR
from warehouse_connection import PG_VARS, connection_params, parse_exports

SCRIPTS = PROJECT_DIR / "scripts"


class Cluster:
    def __init__(self, state_dir: Path, port: int, **settings: str) -> None:
        # The test's own cluster: none of the caller's server, cluster or license choice.
        skip = {*PG_VARS, "STOCK_ANALYTICS_TIMESCALEDB_LICENSE", "STOCK_ANALYTICS_WAL_ARCHIVE"}
        self.state_dir = state_dir
        self.env = {k: v for k, v in os.environ.items() if k not in skip}
        self.env |= {"STOCK_ANALYTICS_STATE_DIR": str(state_dir), "STOCK_ANALYTICS_PG_PORT": str(port)}
        self.env |= settings

    @classmethod
    def new(cls, folder: str = "test-clusters", **settings: str) -> Cluster:
        """A cluster to be made under .local/FOLDER/<random name>, with db.sh's settings
        (STOCK_ANALYTICS_* variables) given."""
        # Under the project, not /tmp/pytest-of-root (mode 700): the postgres user must reach it.
        state_dir = PROJECT_DIR / ".local" / folder / uuid.uuid4().hex[:8]
        state_dir.parent.mkdir(parents=True, exist_ok=True)
        settings.setdefault("STOCK_ANALYTICS_BACKUP_DIR", str(state_dir / "backups"))
        return cls(state_dir, free_port(), **settings)

    def script(
        self, name: str, *args: str, timeout: float = 300, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """scripts/<name>.sh ARGS on this cluster."""
        return subprocess.run(
            ["bash", str(SCRIPTS / f"{name}.sh"), *args],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def run(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        """scripts/db.sh COMMAND."""
        return self.script("db", command, **env)

    def role_env(self, role: str | None = None, replica: int | None = None) -> dict[str, str]:
        """The libpq variables of the owner or a component role, on the primary or replica N."""
        which = [] if replica is None else [str(replica)]
        done = self.script("db" if replica is None else "replica", "env", *which, *([role] if role else []))
        if done.returncode != 0:
            raise RuntimeError(f"no connection variables for {role or 'the owner'}: {done.stderr.strip()}")
        return parse_exports(done.stdout)

    def connect(
        self, role: str | None = None, replica: int | None = None, dbname: str | None = None
    ) -> psycopg2.extensions.connection:
        params = connection_params(self.role_env(role, replica))
        conn = psycopg2.connect(**params | ({"dbname": dbname} if dbname else {}))
        conn.autocommit = True
        return conn

    def superuser(
        self, replica: int | None = None, dbname: str = "postgres"
    ) -> psycopg2.extensions.connection:
        """The bootstrap superuser over the cluster's (or replica N's) socket."""
        folder = self.state_dir if replica is None else self.state_dir / f"replica-{replica}"
        port = (
            self.env["STOCK_ANALYTICS_PG_PORT"] if replica is None else (folder / "port").read_text().strip()
        )
        conn = psycopg2.connect(host=str(folder / "run"), port=port, user="postgres", dbname=dbname)
        conn.autocommit = True
        return conn

    def setting(self, name: str) -> str:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("select current_setting(%s)", (name,))
                return cur.fetchone()[0]
        finally:
            conn.close()

    def destroy(self) -> None:
        """Stop whatever runs of it (restored clusters, replicas, the primary), delete its folder."""
        self.script("pitr", "down")
        for replica in sorted(self.state_dir.glob("replica-*")):
            self.script("replica", "down", replica.name.removeprefix("replica-"))
        self.run("down")
        shutil.rmtree(self.state_dir, ignore_errors=True)
