"""The OpenAPI document, made to say what the API does: every error an operation can answer,
as `application/problem+json` with the schema of the body the API really sends (and an example
made by the code that sends it), the headers every response carries, and query parameters
without the `null` branch FastAPI gives optional ones (a query string has no null: omitted is
the default)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import cursors
from api.db import MARTS_MISSING, unreachable
from api.errors import (
    INTERNAL_ERROR,
    PROBLEM_JSON,
    RETRY_AFTER_SECONDS,
    ApiError,
    invalid_parameter,
    problem_body,
    unknown_parameter,
    unknown_symbol,
)
from api.models import Problem, ValidationProblem
from api.queries import SCREENER_PARAMETERS, SERIES_PARAMETERS
from api.settings import Settings

SERVER_TIMING_PATTERN = r"^db;dur=[0-9.]+, wait;dur=[0-9.]+, app;dur=[0-9.]+$"
SERVER_TIMING = {
    "description": "Milliseconds spent running SQL (`db`), waiting for a pooled connection "
    "(`wait`) and on the whole request (`app`).",
    "required": True,
    "schema": {"type": "string", "pattern": SERVER_TIMING_PATTERN},
    "example": "db;dur=1.204, wait;dur=0.012, app;dur=2.371",
}
DATABASE_SERVER = {
    "description": "The server that answered the request's SQL: `primary`, or `replica host:port` "
    "(API_READ_SERVERS). Absent when the request ran no SQL.",
    "required": False,
    "schema": {"type": "string", "pattern": "^(primary|replica .+:[0-9]+)$"},
    "example": "replica localhost:55532",
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "example": int(RETRY_AFTER_SECONDS),
}


def _example(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "value": body}


def _api_error_body(error: ApiError) -> dict[str, Any]:
    extra = {"errors": error.errors} if error.errors else {}
    return problem_body(error.status, error.title, error.detail, **extra)


def _bad(location: str, parameter: str, message: str) -> dict[str, Any]:
    error = invalid_parameter(location, parameter, message)
    return problem_body(error.status, error.title, error.detail, errors=error.errors)


EXAMPLES_422 = {
    "cursor": _example(
        "A cursor that is not a `next` of this list", _bad("query", "cursor", cursors.NOT_A_CURSOR)
    ),
    "range": _example(
        "`end` before `start`", _bad("query", "end", "end (2020-01-01) is before start (2021-01-01)")
    ),
    "date": _example(
        "A date not in ISO 8601", _bad("query", "start", "must be a date as YYYY-MM-DD (ISO 8601)")
    ),
    "limit": _example(
        "A page size over the limit", _bad("query", "limit", "Input should be less than or equal to 5000")
    ),
    "unknown_parameter": _example(
        "A query parameter the operation does not have (here a misspelt `start`)",
        _api_error_body(unknown_parameter("strat", SERIES_PARAMETERS)),
    ),
    "unknown_flag": _example(
        "A query parameter the operation does not have (here a misspelt `rsi_below_30`)",
        _api_error_body(unknown_parameter("rsi_below30", SCREENER_PARAMETERS)),
    ),
    "symbol": _example(
        "A symbol with characters no symbol has",
        _bad("path", "symbol", "contains characters that are not allowed (see the parameter's pattern)"),
    ),
}


# What a 422 refuses beyond each parameter's own schema, by the example it comes with.
RULES_422 = {
    "cursor": " A `cursor` that is not a `next` value of this list is refused too (see `cursor`).",
    "range": (
        " So is `end` before `start`, and a stated range longer than the server's limit "
        "(`API_MAX_RANGE_DAYS`, 36,525 days unless set)."
    ),
    **dict.fromkeys(
        ("unknown_parameter", "unknown_flag"),
        (
            " So is a query parameter the operation does not have (a misspelt filter or date would "
            "otherwise be ignored, and the answer silently wider than asked)."
        ),
    ),
}


EXAMPLES_503 = {
    "unreachable": _example(
        "The database does not answer",
        problem_body(503, "Database unavailable", unreachable(Settings.pool_timeout)),
    ),
    "marts": _example(
        "The marts are not built yet, or dbt is rebuilding them",
        problem_body(503, "Database unavailable", MARTS_MISSING),
    ),
}


def _error(model: type[Problem], description: str, examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # FastAPI puts the model's schema under application/json; tidy() renames that media type.
    return {
        "model": model,
        "description": description,
        "content": {"application/json": {"examples": examples}},
    }


def _response(status: int, invalid: tuple[str, ...]) -> dict[str, Any]:
    if status == 404:
        return _error(
            Problem,
            "No such symbol in `dim_symbols` (symbols are case-sensitive).",
            {"unknown": _example("An unknown symbol", _api_error_body(unknown_symbol("ZZZZ")))},
        )
    if status == 422:
        return _error(
            ValidationProblem,
            "A parameter was refused; `errors` says which and why."
            + "".join(RULES_422.get(name, "") for name in invalid),
            {name: EXAMPLES_422[name] for name in invalid},
        )
    if status == 500:
        return _error(
            Problem,
            "The API failed to answer (a bug); the trace is in the server's log, not here.",
            {"internal": _example("Any unexpected failure", INTERNAL_ERROR)},
        )
    if status == 503:
        return _error(
            Problem,
            "The database or the marts are unavailable right now; retry after `Retry-After` seconds.",
            EXAMPLES_503,
        )
    raise ValueError(f"no error response {status} is defined")


def error_responses(*statuses: int, invalid: tuple[str, ...] = ()) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: each status it can answer besides 200. `invalid` names
    the 422 examples that fit its parameters (keys of EXAMPLES_422)."""
    return {status: _response(status, invalid) for status in statuses}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, {type: null}]` as X, keeping the outer keywords (description, format, ...)."""
    branches = schema.get("anyOf")
    if not branches or len(branches) != 2 or {"type": "null"} not in branches:
        return schema
    (kept,) = [branch for branch in branches if branch != {"type": "null"}]
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept, **rest}


def tidy(document: dict[str, Any]) -> dict[str, Any]:
    """Error media types, response headers and query parameters as the API really has them."""
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _without_null(parameter["schema"])
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if not status.startswith("2") and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
                headers = response.setdefault("headers", {})
                headers["Server-Timing"] = SERVER_TIMING
                headers["X-Database-Server"] = DATABASE_SERVER
                if status == "503":
                    headers["Retry-After"] = RETRY_AFTER
    return document


def install(app: FastAPI) -> None:
    """Serve the tidied document at /openapi.json (built once, on the first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = tidy(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
