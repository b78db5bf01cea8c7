"""Streaming replicas (scripts/replica.sh), the API reading from them (api/servers.py), and
point-in-time restore from base backups and the WAL archive (scripts/pitr.sh), on a primary and
a replica of the module's own, made by the project's scripts as a user would."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psycopg2
import pytest

from devtools import api_server
from devtools.clusters import Cluster
from devtools.databases import Database, database_env
from devtools.project import MARTS, SAMPLE_DIR
from warehouse_connection import connection_params, parse_exports

pytestmark = pytest.mark.one_pass  # physical replication does not depend on the edition

SYMBOLS = ("stocks/AAPL.csv", "stocks/AMD.csv", "etfs/EWJ.csv")
HELD_BACK = 5  # AMD's last lines, loaded by the daily refresh
MAX_LAG = 2.0  # the API's bound in these tests, seconds
STATUS_LINE = re.compile(
    r"^replica (?P<n>\d+) port (?P<port>\d+) state (?P<state>\S+) lag_bytes (?P<lag_bytes>\S+) "
    r"lag_s (?P<lag_s>\S+) slot_wal_bytes (?P<slot_wal_bytes>\d+)$"
)


@dataclass
class ClusterDatabase(Database):
    """The project database of a test cluster: its roles' passwords are that cluster's."""

    cluster: Cluster | None = None

    def role_env(self, role: str) -> dict[str, str]:
        assert self.cluster is not None
        own = self.cluster.role_env(role)
        return {**self.env, "PGUSER": own["PGUSER"], "PGPASSWORD": own["PGPASSWORD"]}


@dataclass
class Warehouse:
    cluster: Cluster
    db: ClusterDatabase
    data: Path
    amd_lines: list[str]
    noted_at: str  # the primary's clock right after the first build
    noted_marts: dict[str, tuple[int, str]]
    refreshed: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


def marts_snapshot(env: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Each mart's row count and a hash of its rows in order, read as the env's role."""
    conn = psycopg2.connect(**connection_params(env))
    try:
        with conn.cursor() as cur:
            snapshot = {}
            for mart in MARTS:
                cur.execute(
                    f"select count(*), md5(string_agg(t::text, '|' order by t::text)) from marts.{mart} t"
                )
                snapshot[mart] = cur.fetchone()
            return snapshot
    finally:
        conn.close()


def one_value(env: dict[str, str], sql: str) -> Any:
    conn = psycopg2.connect(**connection_params(env))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


def wait_for_replay(cluster: Cluster, lsn: str, timeout: float = 60) -> None:
    """Until replica 1 has replayed the primary's WAL up to lsn."""
    deadline = time.monotonic() + timeout
    while True:
        conn = cluster.superuser(replica=1)
        try:
            with conn.cursor() as cur:
                cur.execute("select pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
                if cur.fetchone()[0]:
                    return
        finally:
            conn.close()
        assert time.monotonic() < deadline, f"replica 1 did not replay up to {lsn} in {timeout} s"
        time.sleep(0.1)


def primary_lsn(cluster: Cluster) -> str:
    conn = cluster.superuser()
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_current_wal_lsn()::text")
            return cur.fetchone()[0]
    finally:
        conn.close()


def status_lines(cluster: Cluster) -> list[dict[str, str]]:
    done = cluster.script("replica", "status")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    matched = [STATUS_LINE.match(line) for line in lines]
    assert all(matched), lines
    return [m.groupdict() for m in matched if m]


def refresh(warehouse: Warehouse) -> None:
    """The daily refresh: AMD's held-back days loaded, then `dbt build`."""
    amd = warehouse.data / "stocks" / "AMD.csv"
    amd.write_text("\n".join(warehouse.amd_lines) + "\n")
    loaded = warehouse.db.run_loader(warehouse.data)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    built = warehouse.db.dbt("build")
    assert built.returncode == 0, built.stdout[-3000:]
    warehouse.refreshed = True


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """A primary with archiving, a base backup, replica 1, then three symbols loaded (AMD's last
    days held back) and built; the time and the marts noted right after."""
    cluster = Cluster.new()
    try:
        up = cluster.run("up")
        assert up.returncode == 0, up.stderr
        backup = cluster.script("pitr", "backup")
        assert backup.returncode == 0, backup.stderr
        replica = cluster.script("replica", "up", "1")
        assert replica.returncode == 0, replica.stderr

        work = tmp_path_factory.mktemp("replicas")
        data = work / "data"
        for name in (*SYMBOLS, "symbols_valid_meta.csv"):
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE_DIR / name, data / name)
        amd_lines = (data / "stocks" / "AMD.csv").read_text().splitlines()
        (data / "stocks" / "AMD.csv").write_text("\n".join(amd_lines[:-HELD_BACK]) + "\n")

        owner = cluster.role_env()
        db = ClusterDatabase(
            name=owner["PGDATABASE"],
            env=database_env(owner["PGDATABASE"], work / "db", env={**os.environ, **owner}),
            work_dir=work / "db",
            cluster=cluster,
        )
        loaded = db.run_loader(data)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        built = db.dbt("build")
        assert built.returncode == 0, built.stdout[-3000:]
        noted_at = one_value(owner, "select clock_timestamp()::text")
        noted = marts_snapshot(cluster.role_env("reader"))
        yield Warehouse(cluster, db, data, amd_lines, noted_at, noted)
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def api(warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API as reader on the primary, reading from replica 1 while it is within MAX_LAG."""
    port = (warehouse.cluster.state_dir / "replica-1" / "port").read_text().strip()
    env = {
        **os.environ,
        **warehouse.cluster.role_env("reader"),
        "API_READ_SERVERS": f"localhost:{port}",
        "API_MAX_REPLICA_LAG": str(MAX_LAG),
    }
    log_path = tmp_path_factory.mktemp("api") / "api.log"
    proc, url = api_server.start(env, log_path)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


class Load:
    """Requests in a loop from a thread, each recorded: (sent at, status, server that answered)."""

    PATHS = ("/symbols/AAPL", "/symbols/AMD/indicators?limit=20", "/screener?limit=5", "/health")

    def __init__(self, url: str) -> None:
        self.url = url
        self.records: list[tuple[float, int, str, dict[str, Any] | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx2.Client(base_url=self.url, timeout=15) as client:
            n = 0
            while not self._stop.is_set():
                path = self.PATHS[n % len(self.PATHS)]
                n += 1
                sent = time.monotonic()
                try:
                    response = client.get(path)
                    body = response.json() if path == "/health" and response.status_code == 200 else None
                    server = response.headers.get("x-database-server", "-")
                    self.records.append((sent, response.status_code, server, body))
                except httpx2.TransportError as exc:
                    self.records.append((sent, 0, repr(exc), None))
                time.sleep(0.01)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def wait_for(self, predicate: Any, timeout: float, what: str) -> float:
        """Until a response after now satisfies predicate(server); the time it was sent."""
        since = time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            for sent, status, server, _ in list(self.records):
                if sent >= since and status == 200 and predicate(server):
                    return sent
            time.sleep(0.05)
        raise AssertionError(f"no response {what} within {timeout} s: {self.records[-5:]}")

    def after(self, moment: float) -> list[tuple[float, int, str, dict[str, Any] | None]]:
        return [r for r in self.records if r[0] >= moment]


def from_replica(server: str) -> bool:
    return server.startswith("replica ")


def from_primary(server: str) -> bool:
    return server == "primary"


# -- the replica as scripts/replica.sh makes it ----------------------------------------------


def test_the_replica_equals_the_primary_once_it_replays_past_the_build(warehouse: Warehouse):
    wait_for_replay(warehouse.cluster, primary_lsn(warehouse.cluster))
    on_replica = marts_snapshot(warehouse.cluster.role_env("reader", replica=1))
    assert on_replica == warehouse.noted_marts or warehouse.refreshed
    assert on_replica == marts_snapshot(warehouse.cluster.role_env("reader"))
    assert all(count > 0 for count, _ in on_replica.values())


def test_status_says_streaming_and_an_idle_primary_leaves_the_lag_at_zero(warehouse: Warehouse):
    # Idle means the primary writes nothing: after a build its autovacuum may still write WAL,
    # so the readings count only from a window of 4 s in which its WAL position did not move.
    cluster = warehouse.cluster
    deadline = time.monotonic() + 90
    while True:
        quiet_from = primary_lsn(cluster)
        wait_for_replay(cluster, quiet_from)
        readings = []
        for _ in range(8):
            readings.append(status_lines(cluster))
            time.sleep(0.5)
        if primary_lsn(cluster) == quiet_from:
            break
        assert time.monotonic() < deadline, "the primary did not stop writing WAL for 4 s in 90 s"
    for lines in readings:  # stays at zero, not growing with the idle time
        (line,) = lines
        assert line["n"] == "1"
        assert line["state"] == "streaming"
        assert line["lag_bytes"] == "0"
        assert line["lag_s"] == "0.000"


def test_the_replica_refuses_every_write_and_the_reader_still_cannot_read_raw(warehouse: Warehouse):
    cluster = warehouse.cluster
    # A write each role may make on the primary (the reader may make none there either).
    writes = {
        None: "delete from marts.fct_latest_day",
        "transformer": "delete from marts.fct_latest_day",
        "loader": "delete from raw.load_log",
        "streamer": "update raw.load_log set rows_read = rows_read",
        "reader": "create temporary table scratch (n int)",
    }
    for role, write in writes.items():
        conn = cluster.connect(role, replica=1)
        try:
            with conn.cursor() as cur:
                cur.execute("select pg_is_in_recovery(), current_user")
                in_recovery, user = cur.fetchone()
                assert in_recovery and user == (role or "stock_analytics")
                with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
                    cur.execute(write)
        finally:
            conn.close()
        if role == "reader":
            continue  # read-only on the primary too
        primary = cluster.connect(role)  # the same write is allowed there (rolled back)
        primary.autocommit = False
        try:
            with primary.cursor() as cur:
                cur.execute(write)
        finally:
            primary.rollback()
            primary.close()
    conn = cluster.connect("reader", replica=1)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select count(*) from raw.daily_prices")
    finally:
        conn.close()


# -- the API reading from the replica --------------------------------------------------------


def test_the_api_reads_from_the_replica_and_health_shows_every_server(warehouse: Warehouse, api: str):
    health = httpx2.get(f"{api}/health", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["served_by"] == health.headers["x-database-server"]
    servers = {s["role"]: s for s in body["servers"]}
    assert servers["replica"]["state"] == "up" and servers["primary"]["state"] == "up"
    assert servers["replica"]["lag_s"] <= MAX_LAG
    assert from_replica(body["served_by"])
    assert body["symbols"] == one_value(
        warehouse.cluster.role_env("reader"), "select count(*) from marts.dim_symbols"
    )


def test_a_replica_killed_under_load_costs_no_request_and_is_used_again(warehouse: Warehouse, api: str):
    cluster = warehouse.cluster
    with Load(api) as load:
        load.wait_for(from_replica, 10, "from the replica")
        postmaster = int(
            (cluster.state_dir / "replica-1" / "pgdata" / "postmaster.pid").read_text().split()[0]
        )
        killed_at = time.monotonic()
        os.kill(postmaster, signal.SIGKILL)
        for child in _children(postmaster):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        time.sleep(3)
        after_kill = load.after(killed_at + 1)
        assert after_kill and all(status == 200 for _, status, _, _ in after_kill), after_kill[-5:]
        assert all(from_primary(server) for _, _, server, _ in after_kill)
        assert all(status == 200 for _, status, _, _ in load.after(killed_at)), "the retry hid the kill"

        restarted = cluster.script("replica", "up", "1")
        assert restarted.returncode == 0, restarted.stderr
        back_at = time.monotonic()
        load.wait_for(from_replica, 10, "from the restarted replica")
    assert all(status == 200 for _, status, _, _ in load.after(back_at))


def _children(pid: int) -> list[int]:
    children = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    children.append(int(proc.name))
    return children


def test_replay_paused_past_the_bound_sends_reads_to_the_primary_until_it_resumes(
    warehouse: Warehouse, api: str
):
    cluster = warehouse.cluster
    replica = cluster.superuser(replica=1)
    writer = cluster.connect()
    try:
        with writer.cursor() as cur:
            cur.execute("create table if not exists public.replay_probe (n int, at timestamptz)")
        with Load(api) as load:
            load.wait_for(from_replica, 10, "from the replica")
            with replica.cursor() as cur:
                cur.execute("select pg_wal_replay_pause()")
            # Changes the paused replica will not show: the first one starts its staleness.
            with writer.cursor() as cur:
                cur.execute("insert into public.replay_probe values (1, clock_timestamp())")
            first_change = time.monotonic()
            while time.monotonic() < first_change + MAX_LAG + 2:
                with writer.cursor() as cur:
                    cur.execute("insert into public.replay_probe values (2, clock_timestamp())")
                time.sleep(0.1)
            stale = [r for r in load.after(first_change + MAX_LAG) if from_replica(r[2])]
            assert not stale, f"answers from the replica staler than {MAX_LAG} s: {stale[:3]}"
            assert load.after(first_change + MAX_LAG + 1)
            assert all(r[1] == 200 for r in load.records)
            health = httpx2.get(f"{api}/health", timeout=10).json()
            (replica_state,) = [s for s in health["servers"] if s["role"] == "replica"]
            assert replica_state["state"] == "lagging" and replica_state["lag_s"] > MAX_LAG

            with replica.cursor() as cur:
                cur.execute("select pg_wal_replay_resume()")
            load.wait_for(from_replica, 5, "from the resumed replica")
        assert all(r[1] == 200 for r in load.records)
    finally:
        with replica.cursor() as cur:
            cur.execute("select pg_wal_replay_resume()")
        replica.close()
        writer.close()


def test_reads_from_the_replica_go_on_through_a_daily_refresh_and_build(warehouse: Warehouse, api: str):
    with Load(api) as load:
        load.wait_for(from_replica, 10, "from the replica")
        started = time.monotonic()
        refresh(warehouse)
        end_of_build = primary_lsn(warehouse.cluster)
        time.sleep(1)
    during = load.after(started)
    assert during and all(status == 200 for _, status, _, _ in during), [r for r in during if r[1] != 200][:5]
    lags = [
        server["lag_s"]
        for _, _, _, body in during
        if body is not None
        for server in body["servers"]
        if server["role"] == "replica" and server["lag_s"] is not None
    ]
    assert lags, "no /health answer during the build"
    assert max(lags) <= MAX_LAG, f"replay fell {max(lags):.2f} s behind during the build"
    assert sum(from_replica(server) for _, _, server, _ in during) > len(during) / 2

    wait_for_replay(warehouse.cluster, end_of_build)
    primary = marts_snapshot(warehouse.cluster.role_env("reader"))
    assert marts_snapshot(warehouse.cluster.role_env("reader", replica=1)) == primary
    assert primary != warehouse.noted_marts  # the refresh changed them


# -- point-in-time restore ----------------------------------------------------------------------


def test_a_restore_to_the_noted_time_has_the_marts_of_that_time(warehouse: Warehouse):
    if not warehouse.refreshed:
        refresh(warehouse)
    cluster = warehouse.cluster
    now_on_primary = marts_snapshot(cluster.role_env("reader"))
    assert now_on_primary != warehouse.noted_marts

    restored = cluster.script("pitr", "restore", warehouse.noted_at, ROLE="reader", timeout=600)
    assert restored.returncode == 0, restored.stderr
    env = parse_exports(restored.stdout)
    assert env["PGUSER"] == "reader"
    assert env["PGPORT"] != cluster.env["STOCK_ANALYTICS_PG_PORT"]
    assert marts_snapshot(env) == warehouse.noted_marts
    assert one_value(env, "select pg_is_in_recovery()") is False
    assert marts_snapshot(cluster.role_env("reader")) == now_on_primary  # the primary untouched


def test_a_restore_to_before_the_archive_begins_is_refused_and_touches_nothing(warehouse: Warehouse):
    cluster = warehouse.cluster
    before = sorted(p.name for p in cluster.state_dir.iterdir())
    lsn = primary_lsn(cluster)
    refused = cluster.script("pitr", "restore", "2001-01-01 00:00:00+00")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "the archive begins at" in refused.stderr and "nothing was restored" in refused.stderr
    assert sorted(p.name for p in cluster.state_dir.iterdir()) == before
    assert primary_lsn(cluster) == lsn  # not even a WAL switch

    nonsense = cluster.script("pitr", "restore", "yesterday at teatime")
    assert nonsense.returncode == 1 and "is not a date and time" in nonsense.stderr


# -- a replica left stopped ---------------------------------------------------------------------


def test_a_stopped_replica_holds_at_most_the_slot_bound_and_is_made_again():
    cluster = Cluster.new(STOCK_ANALYTICS_MAX_SLOT_WAL_KEEP_SIZE="48MB", STOCK_ANALYTICS_WAL_ARCHIVE="off")
    try:
        assert cluster.run("up").returncode == 0
        assert cluster.setting("max_slot_wal_keep_size") == "48MB"
        made = cluster.script("replica", "up", "1")
        assert made.returncode == 0, made.stderr
        assert cluster.script("replica", "down", "1").returncode == 0

        conn = cluster.connect()
        with conn.cursor() as cur:
            cur.execute(
                "create table filler as select n, repeat('x', 100) as pad from generate_series(1, 200000) n"
            )
        conn.close()
        (line,) = status_lines(cluster)
        assert line["state"] == "down" and line["lag_s"] == "-"
        assert int(line["slot_wal_bytes"]) > 16 * 1024 * 1024  # the slot holds what the replica missed

        conn = cluster.connect()  # past the bound: the next checkpoints release the slot's WAL
        with conn.cursor() as cur:
            cur.execute("insert into filler select n, repeat('y', 100) from generate_series(1, 600000) n")
        conn.close()
        su = cluster.superuser()
        with su.cursor() as cur:
            cur.execute("checkpoint")
            cur.execute("select wal_status from pg_replication_slots where slot_name = 'replica_1'")
            assert cur.fetchone()[0] == "lost"
            cur.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), redo_lsn) from pg_control_checkpoint()")
        su.close()
        (line,) = status_lines(cluster)
        assert line["state"] == "lost"

        again = cluster.script("replica", "up", "1")
        assert again.returncode == 0, again.stderr
        assert "cannot catch up: its slot released the WAL it needed" in again.stderr
        deadline = time.monotonic() + 20
        while (line := status_lines(cluster)[0])["state"] != "streaming":
            assert time.monotonic() < deadline, line
            time.sleep(0.3)
        replica = cluster.connect(replica=1)
        with replica.cursor() as cur:
            cur.execute("select count(*) from filler")
            assert cur.fetchone()[0] == 800_000
        replica.close()
    finally:
        cluster.destroy()
