"""The FastAPI application: routes, error handlers, offline docs, access log, and the
database pool opened and closed with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import docs, errors, openapi
from api.access_log import AccessLog
from api.db import Database
from api.models import MAX_PAGE_SIZE
from api.routes import router
from api.settings import Settings

DESCRIPTION = f"""
Read-only JSON over the stock_analytics marts: symbols, daily bars, period averages, moving
averages, indicators, and a screener of each symbol's last day. Field names are the marts'
column names, dates ISO 8601, numbers JSON numbers.

**Pages.** Lists are paginated by key: at most {MAX_PAGE_SIZE:,} rows a page (`limit`); when
there are more, `next` holds a cursor to send back as `cursor` with the same other parameters.
A cursor is an opaque token: send a `next` value back unchanged, to the list that gave it. One
that does not decode as a cursor of that list (another endpoint's or another period's, or a
string cut, altered or made up) is refused with 422.

**Errors** are `application/problem+json` (RFC 9457; schemas `Problem`, and `ValidationProblem`
with `errors` for 422), and each operation lists those it can answer: 404 for an unknown
symbol, 422 for a refused parameter (`errors` says which and why), 500 for a bug (the trace
stays in the server's log), 503 with `Retry-After` while the database or the marts are
unavailable. Each response carries `Server-Timing: db;dur=..., wait;dur=..., app;dur=...`
(milliseconds: running the SQL, waiting for a pooled connection, the whole request).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        await db.open()
        app.state.db = db
        try:
            yield
        finally:
            await db.close()

    app = FastAPI(
        title="stock_analytics API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "service", "description": "Is the API and its database up."},
            {"name": "symbols", "description": "`dim_symbols`: what there is."},
            {"name": "prices", "description": "Daily bars, period averages, moving averages, indicators."},
            {"name": "screener", "description": "`fct_latest_day`: each symbol's last day, by flags."},
        ],
    )
    app.state.settings = settings
    app.include_router(router)
    errors.install(app)
    openapi.install(app)
    docs.install(app)
    app.add_middleware(AccessLog)
    return app
