"""scripts/db.sh (make db-up / db-down / env) on a cluster of the test's own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from devtools.ports import free_port
from devtools.project import PROJECT_DIR
from warehouse_connection import PG_VARS

DB_SCRIPT = PROJECT_DIR / "scripts" / "db.sh"


class Cluster:
    def __init__(self, state_dir: Path, port: int) -> None:
        # The test's own cluster: none of the caller's server or license choice.
        skip = {*PG_VARS, "STOCK_ANALYTICS_TIMESCALEDB_LICENSE"}
        self.env = {k: v for k, v in os.environ.items() if k not in skip}
        self.env |= {"STOCK_ANALYTICS_STATE_DIR": str(state_dir), "STOCK_ANALYTICS_PG_PORT": str(port)}

    def run(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(DB_SCRIPT), command],
            env=self.env | env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def connect(self) -> psycopg2.extensions.connection:
        env = dict(line.removeprefix("export ").split("=", 1) for line in self.run("env").stdout.splitlines())
        conn = psycopg2.connect(
            host=env["PGHOST"],
            port=env["PGPORT"],
            user=env["PGUSER"],
            password=env["PGPASSWORD"],
            dbname=env["PGDATABASE"],
        )
        conn.autocommit = True
        return conn

    def setting(self, name: str) -> str:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("select current_setting(%s)", (name,))
            value = cur.fetchone()[0]
        conn.close()
        return value


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Under the project, not /tmp/pytest-of-root (mode 700): the postgres user must reach it.
    state_dir = PROJECT_DIR / ".local" / "test-clusters" / uuid.uuid4().hex[:8]
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    made = Cluster(state_dir, free_port())
    yield made
    made.run("down")
    shutil.rmtree(state_dir, ignore_errors=True)


def test_up_down_up_keeps_the_data_and_a_second_up_is_quick(cluster: Cluster):
    first = cluster.run("up")
    assert first.returncode == 0, first.stderr
    with cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("select extversion from pg_extension where extname = 'timescaledb'")
        assert cur.fetchone() is not None
        cur.execute("create table kept (n int); insert into kept values (42)")
    conn.close()

    assert cluster.run("down").returncode == 0
    assert cluster.run("status").returncode == 3  # stopped
    again = cluster.run("up")
    assert again.returncode == 0, again.stderr
    with cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("select n from kept")
        assert cur.fetchall() == [(42,)]
    conn.close()

    started = time.monotonic()
    third = cluster.run("up")  # everything in place: nothing to do
    assert third.returncode == 0
    assert time.monotonic() - started < 10
    assert "Creating" not in third.stderr and "Starting" not in third.stderr


def test_up_says_what_to_do_when_the_port_is_taken(cluster: Cluster):
    port = int(cluster.env["STOCK_ANALYTICS_PG_PORT"])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = cluster.run("up")
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "STOCK_ANALYTICS_PG_PORT" in result.stderr


def test_env_prints_the_libpq_variables_and_no_password_is_committed(cluster: Cluster):
    lines = cluster.run("env").stdout.splitlines()
    names = [line.removeprefix("export ").split("=", 1)[0] for line in lines]
    assert names == [*PG_VARS, "DBT_PROFILES_DIR"]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [f for f in tracked if f.startswith(".local/") or f.endswith("pgpassword")]


def test_env_hands_back_your_own_server_variables_untouched():
    env = {k: v for k, v in os.environ.items() if k not in PG_VARS}
    env |= {"PGHOST": "db.example.internal", "PGPORT": "6543", "PGUSER": "me", "PGDATABASE": "prices"}
    out = subprocess.run(
        ["bash", str(DB_SCRIPT), "env"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert "export PGHOST=db.example.internal" in out
    assert "export PGPORT=6543" in out
    assert "PGPASSWORD" not in out  # none was set, none is invented


@pytest.mark.community  # switching to 'timescale' needs the community build installed
def test_up_applies_the_license_and_an_existing_cluster_follows(cluster: Cluster):
    first = cluster.run("up", STOCK_ANALYTICS_TIMESCALEDB_LICENSE="apache")
    assert first.returncode == 0, first.stderr
    assert cluster.setting("timescaledb.license") == "apache"

    switched = cluster.run("up", STOCK_ANALYTICS_TIMESCALEDB_LICENSE="timescale")
    assert switched.returncode == 0, switched.stderr
    assert "its TimescaleDB license is 'apache', the configuration says 'timescale'" in switched.stderr
    assert cluster.setting("timescaledb.license") == "timescale"

    kept = cluster.run("up")  # no license asked for: the cluster keeps its own, no restart
    assert kept.returncode == 0, kept.stderr
    assert "Restarting" not in kept.stderr
    assert cluster.setting("timescaledb.license") == "timescale"


def test_up_refuses_an_unknown_license_before_making_anything(cluster: Cluster):
    result = cluster.run("up", STOCK_ANALYTICS_TIMESCALEDB_LICENSE="enterprise")
    assert result.returncode == 1
    assert "STOCK_ANALYTICS_TIMESCALEDB_LICENSE=enterprise: use 'apache' or 'timescale'." in result.stderr
    assert not Path(cluster.env["STOCK_ANALYTICS_STATE_DIR"], "pgdata").exists()


def test_an_existing_cluster_follows_a_new_port(cluster: Cluster):
    assert cluster.run("up").returncode == 0
    new_port = free_port()
    cluster.env["STOCK_ANALYTICS_PG_PORT"] = str(new_port)
    moved = cluster.run("up")
    assert moved.returncode == 0, moved.stderr
    assert "the configuration says " + str(new_port) in moved.stderr
    assert cluster.setting("port") == str(new_port)
