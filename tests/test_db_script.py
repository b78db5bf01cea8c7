"""scripts/db.sh (make db-up / db-down / env) on a cluster of the test's own."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.clusters import Cluster
from devtools.ports import free_port
from devtools.project import PROJECT_DIR
from warehouse_connection import PG_VARS

DB_SCRIPT = PROJECT_DIR / "scripts" / "db.sh"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster.new()
    yield made
    made.destroy()


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


def test_a_new_cluster_archives_its_wal_and_bounds_what_a_slot_holds(cluster: Cluster):
    assert cluster.run("up").returncode == 0
    assert cluster.setting("archive_mode") == "on"
    assert cluster.setting("max_slot_wal_keep_size") == "4GB"
    assert wal_is_archived(cluster)


def test_archiving_turned_off_stays_off_at_every_later_up_until_asked_for(cluster: Cluster):
    """Every make target that needs the server runs `make db-up`: one without the variable
    must not turn a cluster's archiving back on (its archive once filled a disk so)."""
    assert cluster.run("up", STOCK_ANALYTICS_WAL_ARCHIVE="off").returncode == 0
    again = cluster.run("up")
    assert again.returncode == 0, again.stderr
    assert "Restarting" not in again.stderr
    assert cluster.setting("archive_mode") == "off"
    elsewhere = cluster.state_dir / "archive-elsewhere"
    moved = cluster.run("up", STOCK_ANALYTICS_WAL_ARCHIVE=str(elsewhere))
    assert moved.returncode == 0, moved.stderr
    assert cluster.setting("archive_mode") == "on"
    assert cluster.run("up").returncode == 0  # the folder chosen is kept too
    conn = cluster.superuser()
    with conn.cursor() as cur:
        cur.execute("show archive_command")
        assert str(elsewhere) in cur.fetchone()[0]
    conn.close()


def test_an_existing_cluster_without_archiving_turns_it_on_and_keeps_its_data(cluster: Cluster):
    assert cluster.run("up", STOCK_ANALYTICS_WAL_ARCHIVE="off").returncode == 0
    assert cluster.setting("archive_mode") == "off"
    with cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("create table kept (n int); insert into kept values (42)")
    conn.close()
    # As a cluster made before archiving: no choice recorded, nothing said in postgresql.conf.
    (cluster.state_dir / "wal-archive-choice").unlink()
    conf = cluster.state_dir / "pgdata" / "postgresql.conf"
    subprocess.run(["sed", "-i", "/^archive_mode = /d", str(conf)], check=True)

    upgraded = cluster.run("up")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "WAL archiving is 'off', the configuration says 'on'" in upgraded.stderr
    assert "no data is lost" in upgraded.stderr
    assert cluster.setting("archive_mode") == "on"
    with cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("select n from kept")
        assert cur.fetchall() == [(42,)]
    conn.close()
    assert wal_is_archived(cluster)


def wal_is_archived(cluster: Cluster) -> bool:
    """A switch to the next WAL file, then that file in the archive, whole, within 30 s."""
    conn = cluster.superuser()
    with conn.cursor() as cur:
        cur.execute("select pg_walfile_name(pg_switch_wal())")
        (segment,) = cur.fetchone()
    archived = cluster.state_dir / "wal-archive" / segment
    deadline = time.monotonic() + 30
    try:
        while not archived.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        with conn.cursor() as cur:
            cur.execute("select failed_count from pg_stat_archiver")
            assert cur.fetchone()[0] == 0
        return archived.stat().st_size == 16 * 1024 * 1024
    finally:
        conn.close()
