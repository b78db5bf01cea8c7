"""The connection pool and the one way routes run SQL: parameterised, read-only, timed, and
with a lost database turned into DatabaseUnavailable (503) instead of a crash."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout, TooManyRequests

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


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = AsyncConnectionPool(
            kwargs={
                **settings.connection,
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
            timeout=settings.pool_timeout,
            reconnect_timeout=settings.reconnect_timeout,
            max_waiting=settings.max_waiting,
            name="api",
            open=False,
        )

    async def open(self) -> None:
        # Do not wait for the database: the API starts (and says 503) while it is down.
        await self.pool.open(wait=False)
        log.info("database pool opened for %s", self.settings.describe())

    async def close(self) -> None:
        await self.pool.close()

    async def fetch(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """All rows of one parameterised query, as dicts keyed by column name."""
        # Two attempts: after the database restarts, the pool's idle connections are dead and
        # only the first use finds out; a second attempt gets a live (or new) connection.
        for attempt in (1, 2):
            asked = time.perf_counter()
            try:
                async with self.pool.connection() as conn:
                    started = time.perf_counter()
                    try:
                        cursor = await conn.execute(sql, params)
                        return await cursor.fetchall()
                    finally:
                        add_db_time(time.perf_counter() - started, started - asked)
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
            except (PoolTimeout, TooManyRequests) as exc:
                log.warning("no database connection: %s", exc)
                raise DatabaseUnavailable(unreachable(self.settings.pool_timeout)) from None
            except psycopg.OperationalError as exc:
                log.warning("database connection failed (attempt %d): %s", attempt, str(exc).strip())
                if attempt == 1:
                    await self.pool.check()  # drop every dead idle connection before retrying
                    continue
                raise DatabaseUnavailable("The database connection was lost; try again shortly.") from None
        raise AssertionError("unreachable")
