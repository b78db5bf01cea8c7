"""Every error leaves the API as RFC 9457 problem JSON with a 4xx or 503 status: no HTML, no
stack trace, and never the offending input echoed back (it may be 10 KB of anything)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from api.cursors import NOT_A_CURSOR
from api.db import DatabaseUnavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "5"
# Any other exception: answered by api.access_log (the trace goes to the log, not the client).
INTERNAL_ERROR = {
    "type": "about:blank",
    "title": "Internal error",
    "status": 500,
    "detail": "The API failed to answer this request; it has been logged.",
}


class ApiError(Exception):
    """A request the API refuses, with the status and the words to say why."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors


def invalid_parameter(location: str, parameter: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid parameter",
        f"{parameter}: {message}",
        [{"location": location, "parameter": parameter, "message": message}],
    )


UNKNOWN_PARAMETER_SHOWN = 40  # characters of an unknown parameter's name echoed back, at most


def unknown_parameter(name: str, allowed: tuple[str, ...]) -> ApiError:
    """A query parameter the operation does not have; its name is cut, as it may be 10 KB."""
    cut = len(name) > UNKNOWN_PARAMETER_SHOWN
    shown = name[:UNKNOWN_PARAMETER_SHOWN] + ("..." if cut else "")
    listed = ", ".join(allowed) if allowed else "none"
    return invalid_parameter("query", shown, f"not a parameter of this endpoint (its parameters: {listed})")


def unknown_symbol(symbol: str) -> ApiError:
    detail = f"No symbol {symbol!r} in dim_symbols (symbols are case-sensitive)."
    return ApiError(404, "Unknown symbol", detail)


def problem_body(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The body of every error (api.models.Problem; with `errors`, ValidationProblem)."""
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    body = problem_body(status, title, detail, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_message(parameter: str, error: dict[str, Any]) -> str:
    if parameter == "cursor":  # too long, or not base64url: either way not a `next` value
        return NOT_A_CURSOR
    message = str(error.get("msg", "invalid value"))
    expected = (error.get("ctx") or {}).get("expected")
    if error.get("type") == "enum" and expected:
        return f"must be one of {expected}"
    if error.get("type") == "value_error":  # a check of api.routes: its own words
        return str((error.get("ctx") or {}).get("error", message))
    if error.get("type") == "string_pattern_mismatch":
        return "contains characters that are not allowed (see the parameter's pattern)"
    return message


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    extra = {"errors": exc.errors} if exc.errors else {}
    return problem(exc.status, exc.title, exc.detail, **extra)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc else "request"
        parameter = ".".join(loc[1:]) or location
        message = _validation_message(parameter, error)
        errors.append({"location": location, "parameter": parameter, "message": message})
    detail = "; ".join(f"{e['parameter']}: {e['message']}" for e in errors)
    return problem(422, "Invalid parameter", detail, errors=errors)


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    titles = {404: "Not found", 405: "Method not allowed"}
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No such endpoint; the endpoints are listed at /docs."
    response = problem(exc.status_code, titles.get(exc.status_code, "Request refused"), detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DatabaseUnavailable)
    return problem(503, "Database unavailable", exc.detail)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(DatabaseUnavailable, _on_database_unavailable)
