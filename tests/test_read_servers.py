"""api/servers.py without a database: how a replica's lag is worked out from the primary's WAL
positions, and where reads go (tests/test_replicas.py does the same against real servers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.servers import PrimaryHistory, ReadServers, Server

pytestmark = pytest.mark.one_pass


def test_the_lag_is_the_age_of_the_last_primary_position_the_replica_has_replayed():
    history = PrimaryHistory(keep_seconds=60)
    for seen_at, position in ((10.0, 100), (11.0, 200), (12.0, 300)):
        history.add(seen_at, position)
    assert history.lag(replayed=250, now=13.0) == 2.0  # everything up to 200 (seen at 11) replayed
    assert history.lag(replayed=200, now=13.0) == 2.0
    assert history.lag(replayed=300, now=13.0) == 1.0
    assert history.lag(replayed=50, now=13.0) is None  # older than the history: not known here


def test_the_history_keeps_what_the_bound_needs_and_no_more():
    history = PrimaryHistory(keep_seconds=5)
    for second in range(100):
        history.add(float(second), second * 10)
    assert len(history.samples) <= 7
    assert history.lag(replayed=990, now=99.0) == 0.0


def test_a_replica_serves_only_while_its_lag_grown_by_the_time_since_is_within_the_bound():
    replica = Server("replica h:1", "replica", "h", 1, state="up", lag_s=1.0, measured_at=100.0)
    assert replica.serves_within(2.0, now=100.9)
    assert not replica.serves_within(2.0, now=101.1)  # no check since: it may be 2.1 s stale by now
    replica.state = "lagging"
    assert not replica.serves_within(2.0, now=100.0)


def read_servers(*replica_states: tuple[str, float]) -> ReadServers:
    replicas = [
        Server(f"replica h:{n}", "replica", "h", n, state=state, lag_s=lag, measured_at=float("inf"))
        for n, (state, lag) in enumerate(replica_states, start=1)
    ]
    return ReadServers(Server("primary", "primary", None, None), replicas, {}, max_lag=2.0, interval=0.25)


def test_reads_take_turns_over_the_replicas_within_the_bound_and_end_with_the_primary():
    servers = read_servers(("up", 0.0), ("lagging", 9.0), ("up", 0.5), ("down", 0.0))
    for replica in servers.replicas:
        replica.measured_at = 1e12  # measured "now": no growth
    orders = [[s.name for s in servers.candidates()] for _ in range(4)]
    assert orders[0] == ["replica h:1", "replica h:3", "primary"]
    assert orders[1] == ["replica h:3", "replica h:1", "primary"]
    assert orders[2] == orders[0]
    assert [s.name for s in read_servers(("down", 0.0)).candidates()] == ["primary"]


class Scripted(ReadServers):
    """The checker's queries answered from a script: one row (or None: down) per server."""

    def __init__(self, rows: dict[str, Any]) -> None:
        replica = Server("replica h:1", "replica", "h", 1)
        super().__init__(Server("primary", "primary", None, None), [replica], {}, max_lag=2.0, interval=0.25)
        self.rows = rows

    async def _query(self, server: Server, sql: str) -> dict[str, Any] | None:
        row = self.rows[server.name]
        if row is None:
            self.mark_down(server, "refused")
        return row


def replica_row(replayed: int, received: int, since_commit: float | None = 30.0) -> dict[str, Any]:
    return {
        "in_recovery": True,
        "replayed": replayed,
        "received": received,
        "since_last_replayed_commit": since_commit,
    }


def test_a_replica_that_replayed_what_the_primary_wrote_has_no_lag_however_long_ago_that_was():
    servers = Scripted(
        {"primary": {"in_recovery": False, "position": 500}, "replica h:1": replica_row(500, 500)}
    )
    asyncio.run(servers.check_once())
    (replica,) = servers.replicas
    assert (replica.state, replica.lag_s, replica.lag_bytes) == ("up", 0.0, 0)


def test_a_replica_behind_by_more_than_the_history_holds_is_judged_by_its_last_replayed_commit():
    servers = Scripted(
        {"primary": {"in_recovery": False, "position": 900}, "replica h:1": replica_row(400, 900)}
    )
    asyncio.run(servers.check_once())
    (replica,) = servers.replicas
    assert (replica.state, replica.lag_s, replica.lag_bytes) == ("lagging", 30.0, 500)


def test_with_the_primary_down_a_replica_that_replayed_all_it_received_still_serves():
    servers = Scripted({"primary": None, "replica h:1": replica_row(400, 400)})
    asyncio.run(servers.check_once())
    (replica,) = servers.replicas
    assert servers.primary.state == "down"
    assert (replica.state, replica.lag_s, replica.lag_bytes) == ("up", 0.0, None)

    servers.rows["replica h:1"] = replica_row(300, 400, since_commit=None)  # paused, nothing replayed yet
    asyncio.run(servers.check_once())
    assert replica.state == "lagging"


def test_a_promoted_read_server_gets_no_reads():
    servers = Scripted(
        {
            "primary": {"in_recovery": False, "position": 5},
            "replica h:1": {**replica_row(5, 5), "in_recovery": False},
        }
    )
    asyncio.run(servers.check_once())
    assert servers.replicas[0].state == "not-a-replica"
    assert [s.name for s in servers.candidates()] == ["primary"]
