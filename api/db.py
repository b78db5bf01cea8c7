"""The connection pools and the one way routes run SQL: parameterised, read-only, timed, sent
to a replica within the lag bound or else the primary (api.servers), and with a lost database
turned into DatabaseUnavailable (503) instead of a crash."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

from api.servers import ReadServers, Server, first_line
from api.settings import Settings
from api.timing import add_db_time

log = logging.getLogger(__name__)

Params = Mapping[str, Any] | Sequence[Any]
MARTS_MISSING = (
    "The marts are not available in the database right now (not built yet, or being rebuilt by "
    "dbt); try again shortly."
)


def unreachable(pool_timeout: float) -> str:
    """The 503 detail when no connection came within the pool's timeout."""
    return (
        f"The database is not reachable right now (no connection within {pool_timeout:g} s); "
        "try again shortly."
    )


class DatabaseUnavailable(Exception):
    """The database cannot answer now; the client may retry (503)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ReplicaFailed(Exception):
    """A replica could not answer (gone, or its query cancelled by replay): try the next server."""


# A replica's failures that another server can answer instead: its connection lost or refused,
# no connection from its pool in time (or its queue full), or the query cancelled by a conflict
# with WAL replay.
REPLICA_FAILURES = (
    psycopg.OperationalError,
    psycopg.errors.TransactionRollback,
    PoolTimeout,
    TooManyRequests,
)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        primary_port = settings.connection.get("port", "")
        primary = Server(
            "primary",
            "primary",
            settings.connection.get("host"),
            int(primary_port) if primary_port.isdigit() else None,
        )
        replicas = [
            Server(f"replica {host}:{port}", "replica", host, port) for host, port in settings.read_servers
        ]
        for server in (primary, *replicas):
            server.pool = self._pool(server)
        self.servers = ReadServers(
            primary,
            replicas,
            settings.connection,
            max_lag=settings.max_replica_lag,
            interval=settings.replica_check_interval,
        )

    def _pool(self, server: Server) -> AsyncConnectionPool:
        settings = self.settings
        where = {"host": server.host, "port": server.port} if server.role == "replica" else {}
        return AsyncConnectionPool(
            kwargs={
                **settings.connection,
                **where,
                "connect_timeout": settings.connect_timeout,
                "application_name": "stock_analytics_api",
                # Read-only sessions whatever the role, and no query may hold a connection for long.
                "options": " ".join(
                    (
                        "-c default_transaction_read_only=on",
                        f"-c statement_timeout={settings.statement_timeout_ms}",
                    )
                ),
                "autocommit": True,
                "row_factory": dict_row,
            },
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            # A replica that gives no connection at once is skipped for the next server; the
            # primary, the last resort, is waited for.
            timeout=settings.pool_timeout if server.role == "primary" else min(settings.pool_timeout, 0.5),
            reconnect_timeout=settings.reconnect_timeout,
            max_waiting=settings.max_waiting,
            name="api" if server.role == "primary" else server.name,
            open=False,
        )

    async def open(self) -> None:
        # Do not wait for the database: the API starts (and says 503) while it is down.
        for server in self.servers.servers:
            await server.pool.open(wait=False)
        await self.servers.start()
        log.info("database pool opened for %s", self.settings.describe())

    async def close(self) -> None:
        await self.servers.stop()
        for server in self.servers.servers:
            await server.pool.close()

    def describe_servers(self) -> list[dict[str, Any]]:
        """Every read server's state and lag at the last check (the primary: up once it answered)."""
        if not self.servers.replicas:  # no checker runs: the request asking has just reached it
            return [{**self.servers.primary.describe(), "state": "up"}]
        return [server.describe() for server in self.servers.servers]

    async def fetch(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """All rows of one parameterised query, as dicts keyed by column name."""
        for server in self.servers.candidates():
            if server.role == "primary":
                return await self._fetch_from_primary(sql, params)
            try:
                return await self._fetch_from_replica(server, sql, params)
            except ReplicaFailed:
                continue
        raise AssertionError("unreachable: the primary is always the last candidate")

    async def _fetch_from_replica(
        self, server: Server, sql: str, params: Params | None
    ) -> list[dict[str, Any]]:
        try:
            return await self._run(server, sql, params)
        except REPLICA_FAILURES as exc:
            reason = first_line(exc)
            if isinstance(exc, psycopg.errors.TransactionRollback):
                log.warning("%s cancelled a read (%s); the next server answers it", server.name, reason)
            else:
                self.servers.mark_down(server, reason)
                await server.pool.check()  # its other idle connections are as dead
            raise ReplicaFailed from None

    async def _fetch_from_primary(self, sql: str, params: Params | None) -> list[dict[str, Any]]:
        primary = self.servers.primary
        # Two attempts: after the database restarts, the pool's idle connections are dead and
        # only the first use finds out; a second attempt gets a live (or new) connection.
        for attempt in (1, 2):
            try:
                return await self._run(primary, sql, params)
            except (PoolTimeout, TooManyRequests) as exc:
                log.warning("no database connection: %s", exc)
                raise DatabaseUnavailable(unreachable(self.settings.pool_timeout)) from None
            except psycopg.OperationalError as exc:
                log.warning("database connection failed (attempt %d): %s", attempt, str(exc).strip())
                if attempt == 1:
                    await primary.pool.check()  # drop every dead idle connection before retrying
                    continue
                raise DatabaseUnavailable("The database connection was lost; try again shortly.") from None
        raise AssertionError("unreachable")

    async def _run(self, server: Server, sql: str, params: Params | None) -> list[dict[str, Any]]:
        """The query on one server; what no other server would answer differently becomes a 503 here."""
        asked = time.perf_counter()
        try:
            async with server.pool.connection() as conn:
                started = time.perf_counter()
                try:
                    cursor = await conn.execute(sql, params)
                    return await cursor.fetchall()
                finally:
                    add_db_time(time.perf_counter() - started, started - asked, server.name)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
            # dbt drops and recreates the mart views while it rebuilds staging: for that
            # moment (or before the first build) the marts are not there to read.
            log.warning("marts missing: %s", str(exc).splitlines()[0])
            raise DatabaseUnavailable(MARTS_MISSING) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            log.error("no privilege: %s", str(exc).splitlines()[0])
            raise DatabaseUnavailable(
                "The API's database role may not read the marts; the operator must grant it."
            ) from None
        except psycopg.errors.QueryCanceled:
            raise DatabaseUnavailable(
                f"The query took longer than {self.settings.statement_timeout_ms} ms and was cancelled."
            ) from None
