"""Access log with latency, a Server-Timing header splitting each request's time into SQL and
the rest (the API's own overhead), and X-Database-Server naming the server that answered.
Plain ASGI middleware: cheaper than BaseHTTPMiddleware."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import INTERNAL_ERROR, PROBLEM_JSON
from api.timing import start_request

log = logging.getLogger("api.access")
BODY_500 = json.dumps(INTERNAL_ERROR).encode()


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        timing = start_request()
        status, status_sent = 500, False
        size = 0

        async def send_timed(message: Message) -> None:
            nonlocal status, status_sent, size
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                # The body is built by now (FastAPI serialises before it starts the response).
                app_ms = (time.perf_counter() - started) * 1000
                header = (
                    f"db;dur={timing.db_seconds * 1000:.3f}, wait;dur={timing.wait_seconds * 1000:.3f}, "
                    f"app;dur={app_ms:.3f}"
                ).encode()
                extra = [(b"server-timing", header)]
                if timing.server is not None:
                    extra.append((b"x-database-server", timing.server.encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        except Exception:
            # Answered here rather than by Starlette's outermost handler, which re-raises into
            # the server: that logs the trace twice and drops the client's keep-alive connection.
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status_sent:
                raise
            await send_timed(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(BODY_500)).encode()),
                    ],
                }
            )
            await send_timed({"type": "http.response.body", "body": BODY_500})
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info(
                '%s "%s %s" %d %dB %.1fms db=%.1fms/%d wait=%.1fms on %s',
                _client(scope),
                scope["method"],
                _target(scope),
                status,
                size,
                elapsed_ms,
                timing.db_seconds * 1000,
                timing.queries,
                timing.wait_seconds * 1000,
                timing.server or "-",
            )


def _client(scope: Scope) -> str:
    client: Any = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def _target(scope: Scope) -> str:
    # Capped: a 10 KB query string is refused, not copied into every log line.
    query = scope.get("query_string", b"").decode("latin-1")
    target = scope.get("raw_path", scope["path"].encode()).decode("latin-1") + (f"?{query}" if query else "")
    return target if len(target) <= 300 else target[:300] + "...(truncated)"
