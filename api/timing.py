"""Per-request time spent in SQL, so the access log and the Server-Timing header can show the
API's own overhead (the request's time beyond its SQL)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestTiming:
    db_seconds: float = 0.0  # executing SQL and fetching its rows
    wait_seconds: float = 0.0  # waiting for a pooled connection (the database's capacity, not ours)
    queries: int = 0


_current: ContextVar[RequestTiming | None] = ContextVar("api_request_timing", default=None)


def start_request() -> RequestTiming:
    timing = RequestTiming()
    _current.set(timing)
    return timing


def add_db_time(seconds: float, waited: float) -> None:
    timing = _current.get()
    if timing is not None:
        timing.db_seconds += seconds
        timing.wait_seconds += waited
        timing.queries += 1
