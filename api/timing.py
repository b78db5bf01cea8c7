"""Per-request time spent in SQL, so the access log and the Server-Timing header can show the
API's own overhead (the request's time beyond its SQL), and which server answered it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestTiming:
    db_seconds: float = 0.0  # executing SQL and fetching its rows
    wait_seconds: float = 0.0  # waiting for a pooled connection (the database's capacity, not ours)
    queries: int = 0
    server: str | None = None  # "primary" or "replica host:port": where the last query ran


_current: ContextVar[RequestTiming | None] = ContextVar("api_request_timing", default=None)


def start_request() -> RequestTiming:
    timing = RequestTiming()
    _current.set(timing)
    return timing


def add_db_time(seconds: float, waited: float, server: str) -> None:
    timing = _current.get()
    if timing is not None:
        timing.db_seconds += seconds
        timing.wait_seconds += waited
        timing.queries += 1
        timing.server = server


def current_server() -> str:
    """The server the request's last query ran on ("primary" before any query)."""
    timing = _current.get()
    return timing.server if timing is not None and timing.server is not None else "primary"
