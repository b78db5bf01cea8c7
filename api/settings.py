"""The API's settings, all from the environment: the libpq variables say where the database
is and as whom to connect (run it as the read-only `reader` role); API_READ_SERVERS lists
replicas to read from (the libpq server is the last resort); API_* tune the service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from warehouse_connection import connection_params


class SettingsError(ValueError):
    """An API_* variable holds something the API cannot use."""


@dataclass(frozen=True)
class Settings:
    # Connection parameters from the PG* variables; what is unset libpq defaults itself.
    connection: dict[str, str] = field(default_factory=dict)
    pool_min_size: int = 1
    pool_max_size: int = 4  # per worker process; each request holds one only while its SQL runs
    # How long a request waits for a connection before it gets 503: bounds the wait while the
    # database is down, so clients learn it in seconds, not at their own timeout.
    pool_timeout: float = 3.0
    # How long the pool keeps retrying one lost connection before starting afresh; bounds how
    # long after the database returns the API still answers 503.
    reconnect_timeout: float = 5.0
    max_waiting: int = 200  # requests queued for a connection beyond this get 503 at once
    connect_timeout: int = 3
    statement_timeout_ms: int = 10_000
    max_range_days: int = 36_525  # a stated start..end may span at most a century
    # Streaming replicas to read from, (host, port) each: same database, role and password.
    read_servers: tuple[tuple[str, int], ...] = ()
    # A replica further behind the primary than this (seconds of staleness) gets no reads.
    max_replica_lag: float = 5.0
    # How often each server's state and lag are checked; a replica that fails is dropped at
    # once, one that recovers is taken back at the next check.
    replica_check_interval: float = 0.25

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            connection=connection_params(env),
            pool_min_size=_number(env, "API_POOL_MIN_SIZE", int, cls.pool_min_size, minimum=0),
            pool_max_size=_number(env, "API_POOL_MAX_SIZE", int, cls.pool_max_size, minimum=1),
            pool_timeout=_number(env, "API_POOL_TIMEOUT", float, cls.pool_timeout, minimum=0.1),
            reconnect_timeout=_number(
                env, "API_RECONNECT_TIMEOUT", float, cls.reconnect_timeout, minimum=0.5
            ),
            max_waiting=_number(env, "API_MAX_WAITING", int, cls.max_waiting, minimum=1),
            connect_timeout=_number(env, "API_CONNECT_TIMEOUT", int, cls.connect_timeout, minimum=1),
            statement_timeout_ms=_number(
                env, "API_STATEMENT_TIMEOUT_MS", int, cls.statement_timeout_ms, minimum=100
            ),
            max_range_days=_number(env, "API_MAX_RANGE_DAYS", int, cls.max_range_days, minimum=1),
            read_servers=_servers(env, "API_READ_SERVERS"),
            max_replica_lag=_number(env, "API_MAX_REPLICA_LAG", float, cls.max_replica_lag, minimum=0.1),
            replica_check_interval=_number(
                env, "API_REPLICA_CHECK_INTERVAL", float, cls.replica_check_interval, minimum=0.05
            ),
        )

    def __post_init__(self) -> None:
        if self.pool_min_size > self.pool_max_size:
            raise SettingsError(
                f"API_POOL_MIN_SIZE ({self.pool_min_size}) exceeds API_POOL_MAX_SIZE ({self.pool_max_size})"
            )

    def describe(self) -> str:
        """Where the API connects, for the start-up log line (never the password)."""
        c = self.connection
        described = (
            f"{c.get('user', '(libpq default user)')}@{c.get('host', '(default host)')}:"
            f"{c.get('port', '(default port)')}/{c.get('dbname', '(default database)')}"
        )
        if self.read_servers:
            replicas = ", ".join(f"{host}:{port}" for host, port in self.read_servers)
            described += f", reading from {replicas} while within {self.max_replica_lag:g} s"
        return described


def _number(env: Mapping[str, str], name: str, kind: type, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _servers(env: Mapping[str, str], name: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (an IPv6 address in brackets: `[::1]:5432`)."""
    servers = []
    for item in (part.strip() for part in env.get(name, "").split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name}: {item!r} is not host:port")
        servers.append((host, int(port)))
    if len(set(servers)) < len(servers):
        raise SettingsError(f"{name} names a server twice")
    return tuple(servers)
