"""Where reads go: the primary (the libpq server) and the streaming replicas of API_READ_SERVERS.

A checker polls every server each `replica_check_interval`: the primary's WAL position, each
replica's replay position. A replica's lag is its staleness: how long ago the primary wrote the
oldest change the replica has not replayed, 0 once it has replayed everything the primary had
written. The checker keeps the primary's positions with the time it saw them, so the lag is the
age of the last position the replica had fully replayed (an upper bound, by at most one check
interval). A replica serves a read only while that lag, plus the time since it was measured,
is within `max_replica_lag`: staleness grows at most one second a second, so no read sees data
staler than the bound, even when the checker itself is held up. The primary is the last resort.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger(__name__)


def first_line(exc: BaseException) -> str:
    """What a failure says, in one line for a log or /health (its type when it says nothing)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


PRIMARY_POSITION = """
select pg_is_in_recovery() as in_recovery,
       pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
                            else pg_current_wal_lsn() end, '0/0')::int8 as position
"""
REPLICA_POSITION = """
select pg_is_in_recovery() as in_recovery,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::int8 as replayed,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::int8 as received,
       extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp())::float8
           as since_last_replayed_commit
"""


@dataclass
class Server:
    """One server reads can go to, and what the last check found."""

    name: str  # "primary", or "replica host:port"
    role: str  # primary | replica
    host: str | None
    port: int | None
    state: str = "unknown"  # up | lagging | down | not-a-replica | unknown
    lag_s: float | None = None
    lag_bytes: int | None = None
    measured_at: float = 0.0  # time.monotonic() of the lag figure
    detail: str | None = None
    pool: Any = field(default=None, repr=False)  # its AsyncConnectionPool, set by api.db

    def serves_within(self, bound: float, now: float) -> bool:
        """A replica answers only while its lag, grown by the time since it was measured, is in bound."""
        return (
            self.state == "up" and self.lag_s is not None and self.lag_s + (now - self.measured_at) <= bound
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "host": self.host,
            "port": self.port,
            "state": self.state,
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
            "lag_bytes": self.lag_bytes,
            "detail": self.detail,
        }


class PrimaryHistory:
    """The primary's WAL positions with when they were seen: what turns a replay position into an age."""

    def __init__(self, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, seen_at: float, position: int) -> None:
        self.samples.append((seen_at, position))
        while len(self.samples) > 2 and self.samples[1][0] < seen_at - self.keep_seconds:
            self.samples.popleft()

    def latest(self) -> int | None:
        return self.samples[-1][1] if self.samples else None

    def lag(self, replayed: int, now: float) -> float | None:
        """Seconds since the primary had written no more than `replayed` (None: not in the history)."""
        last_covered = None
        for seen_at, position in self.samples:
            if position <= replayed:
                last_covered = seen_at
            else:
                break
        return None if last_covered is None else now - last_covered


class ReadServers:
    """The servers, their checker, and the choice of where the next read goes."""

    def __init__(
        self,
        primary: Server,
        replicas: list[Server],
        connection: dict[str, Any],
        max_lag: float,
        interval: float,
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.connection = connection
        self.max_lag = max_lag
        self.interval = interval
        self.history = PrimaryHistory(keep_seconds=max(60.0, 4 * max_lag))
        self._turn = itertools.count()
        self._check_connections: dict[str, psycopg.AsyncConnection] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def servers(self) -> list[Server]:
        return [*self.replicas, self.primary]

    def candidates(self) -> list[Server]:
        """Where to try a read, in order: the replicas within the bound (taking turns), then the primary."""
        now = time.monotonic()
        usable = [r for r in self.replicas if r.serves_within(self.max_lag, now)]
        if len(usable) > 1:
            shift = next(self._turn) % len(usable)
            usable = usable[shift:] + usable[:shift]
        return [*usable, self.primary]

    def mark_down(self, server: Server, reason: str) -> None:
        if server.state != "down":
            if server.role == "replica":
                log.warning("%s: no reads until it answers again (%s)", server.name, reason)
            else:
                log.warning("the primary does not answer its check (%s)", reason)
        server.state, server.detail = "down", reason

    async def start(self) -> None:
        if self.replicas:
            await self.check_once()
            self._task = asyncio.create_task(self._check_forever(), name="read-servers-check")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in self._check_connections.values():
            await conn.close()
        self._check_connections.clear()

    async def _check_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.check_once()
            except Exception:  # the checker must outlive any one failure
                log.exception("checking the read servers failed")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def check_once(self) -> None:
        # The primary first: a replica's replay position is then compared with a position the
        # primary had already reached.
        row = await self._query(self.primary, PRIMARY_POSITION)
        if row is not None:
            self.primary.state, self.primary.detail = "up", None
            self.history.add(time.monotonic(), row["position"])
        await asyncio.gather(*(self._check_replica(r) for r in self.replicas))

    async def _check_replica(self, replica: Server) -> None:
        row = await self._query(replica, REPLICA_POSITION)
        if row is None:
            return
        now = time.monotonic()
        if not row["in_recovery"]:
            replica.state, replica.detail = "not-a-replica", "it is not in recovery (promoted?): no reads"
            return
        replayed, received = row["replayed"], row["received"]
        primary_position = self.history.latest() if self.primary.state == "up" else None
        if primary_position is not None and replayed >= primary_position:
            lag: float | None = 0.0
        elif primary_position is not None:
            lag = self.history.lag(replayed, now)
        elif received is not None and replayed >= received:
            lag = 0.0  # the primary is out of reach: nothing newer than what arrived can be known
        else:
            lag = None
        if lag is None:
            # Behind by more than the history holds: the last replayed commit's age bounds it.
            lag = row["since_last_replayed_commit"] or float("inf")
        replica.lag_s, replica.measured_at = lag, now
        replica.lag_bytes = None if primary_position is None else max(0, primary_position - replayed)
        within = lag <= self.max_lag
        if replica.state in ("up", "unknown") and not within:
            log.warning(
                "%s lags %.1f s (over %.1f s): no reads until it catches up", replica.name, lag, self.max_lag
            )
        elif replica.state not in ("up", "unknown") and within:
            log.info("%s is back (lag %.3f s): reads go to it again", replica.name, lag)
        replica.state = "up" if within else "lagging"
        replica.detail = None

    async def _query(self, server: Server, sql: str) -> dict[str, Any] | None:
        """One row from the server on its check connection (None, and the server down, on failure)."""
        try:
            conn = self._check_connections.get(server.name)
            if conn is None or conn.closed:
                params = {
                    **self.connection,
                    "connect_timeout": 2,
                    "application_name": "stock_analytics_api_check",
                }
                if server.role == "replica":
                    params |= {"host": server.host, "port": server.port}
                conn = await asyncio.wait_for(
                    psycopg.AsyncConnection.connect(**params, autocommit=True, row_factory=dict_row),
                    timeout=max(1.0, 4 * self.interval),
                )
                self._check_connections[server.name] = conn
            cursor = await asyncio.wait_for(conn.execute(sql), timeout=max(1.0, 4 * self.interval))
            return await cursor.fetchone()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            conn = self._check_connections.pop(server.name, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            self.mark_down(server, first_line(exc))
            return None
