"""The endpoints. Each one validates its input (FastAPI + the checks here), runs one statement
from api.queries with bound parameters, and answers in the shape of a model of api.models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BeforeValidator

from api import cursors, queries
from api.db import Database
from api.errors import invalid_parameter, unknown_parameter, unknown_symbol
from api.models import (
    FLAG_DESCRIPTIONS,
    MAX_PAGE_SIZE,
    DailyIndicatorPage,
    DailyPricePage,
    Health,
    LatestDayPage,
    MovingAveragePage,
    PeriodAveragePage,
    Symbol,
    SymbolPage,
)
from api.openapi import error_responses
from api.queries import Period
from api.timing import current_server

router = APIRouter()

SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9.\-_$^=+]{0,31}$"
SEARCH_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # printable text: control characters (NUL) refused
EARLIEST, LATEST = date(1, 1, 1), date(9999, 12, 31)  # the open ends of an omitted range

# What each operation can answer besides 200 (api.openapi documents them as problem+json).
SERIES_ERRORS = error_responses(404, 422, 500, 503, invalid=("cursor", "range", "date", "limit", "symbol"))


def database(request: Request) -> Database:
    return request.app.state.db


def max_range_days(request: Request) -> int:
    return request.app.state.settings.max_range_days


Db = Annotated[Database, Depends(database)]
SymbolPath = Annotated[
    str,
    Path(
        description="Ticker, case-sensitive: letters, digits and `. - _ $ ^ = +`, at most 32 characters.",
        pattern=SYMBOL_PATTERN,
        max_length=32,
        examples=["AAPL"],
    ),
]
Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"Rows per page, at most {MAX_PAGE_SIZE:,} (one request never returns more).",
    ),
]
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"  # base64url without padding, as cursors.encode() writes it


def _cursor_query(example: str | None) -> Any:
    return Query(
        min_length=1,
        max_length=cursors.MAX_CURSOR_LENGTH,
        pattern=CURSOR_PATTERN,
        description=(
            "Opaque: the `next` value of the previous page of this same list, sent back unchanged "
            "with the same other parameters; omit it for the first page. Refused (422) when it "
            "does not decode as a cursor of this list: a `next` of another list (another endpoint, "
            "or another period), or a string cut, altered or made up."
        ),
        examples=[example] if example else None,
    )


SymbolCursor = Annotated[str | None, _cursor_query(cursors.encode("s", "AAPL"))]
PriceCursor = Annotated[str | None, _cursor_query(cursors.encode("d", date(2020, 6, 30)))]
AverageCursor = Annotated[str | None, _cursor_query(None)]  # a monthly one is no weekly one
MovingAverageCursor = Annotated[str | None, _cursor_query(cursors.encode("m", date(2020, 6, 30)))]
IndicatorCursor = Annotated[str | None, _cursor_query(cursors.encode("i", date(2020, 6, 30)))]
ScreenerCursor = Annotated[str | None, _cursor_query(cursors.encode("l", "AAPL"))]


def known_parameters(*names: str) -> Any:
    """A dependency refusing (422) query parameters the endpoint does not have: a misspelt
    filter (`rsi_below30=true`) or date (`strat=`) would otherwise be ignored, and the answer
    silently wider than asked."""
    allowed = frozenset(names)

    def refuse_unknown(request: Request) -> None:
        for name in request.query_params:
            if name not in allowed:
                raise unknown_parameter(name, names)

    return Depends(refuse_unknown)


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only, unlike \d


def _parse_date(parameter: str, text: str | None) -> date | None:
    """A strict ISO 8601 calendar date (pydantic's lax parsing would take `86400` as 1970-01-02)."""
    if text is None:
        return None
    if not ISO_DATE.fullmatch(text):
        raise invalid_parameter("query", parameter, "must be a date as YYYY-MM-DD (ISO 8601)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise invalid_parameter("query", parameter, f"{text} is not a calendar date") from None


def _date_query(description: str, example: str) -> Any:
    # The pattern is checked by _parse_date (for its clearer message), not by FastAPI.
    return Query(
        max_length=10,
        description=description,
        examples=[example],
        json_schema_extra={"format": "date", "pattern": f"^{ISO_DATE.pattern}$"},
    )


def _boolean(value: Any) -> Any:
    """A query boolean as OpenAPI writes one, `true` or `false`; not the other spellings
    pydantic would take (`1`, `0`, `yes`, `off`, ...), which the document does not offer."""
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


def date_range(
    request: Request,
    start: Annotated[
        str | None,
        _date_query("First date, inclusive (YYYY-MM-DD). Omitted: from the first row.", "2020-01-01"),
    ] = None,
    end: Annotated[
        str | None,
        _date_query("Last date, inclusive (YYYY-MM-DD). Omitted: to the last row.", "2020-12-31"),
    ] = None,
) -> DateRange:
    first, last = _parse_date("start", start), _parse_date("end", end)
    if first and last:
        if first > last:
            raise invalid_parameter("query", "end", f"end ({last}) is before start ({first})")
        limit = max_range_days(request)
        if (last - first).days > limit:
            raise invalid_parameter(
                "query",
                "end",
                f"the range spans {(last - first).days:,} days; at most {limit:,} "
                "(omit start or end for an open range; pages come with a cursor)",
            )
    return DateRange(first or EARLIEST, last or LATEST)


Range = Annotated[DateRange, Depends(date_range)]


def _date_after(kind: str, cursor: str | None) -> date:
    """The last date of the previous page, or a date before every row."""
    if cursor is None:
        return EARLIEST  # no row is dated 0001-01-01
    try:
        return cursors.decode_date(kind, cursor)
    except cursors.BadCursor as exc:
        raise invalid_parameter("query", "cursor", str(exc)) from None


async def _series_page(
    db: Database,
    sql: str,
    *,
    kind: str,
    key: str,
    symbol: str,
    span: DateRange,
    limit: int,
    cursor: str | None,
) -> Response:
    """One page of a symbol's series; 404 when the symbol is unknown (checked only when the
    page is empty, so a normal request costs one query)."""
    after = _date_after(kind, cursor)
    params = {"symbol": symbol, "start": span.start, "end": span.end, "after": after, "limit": limit + 1}
    rows = await db.fetch(sql, params)
    if not rows and cursor is None:
        await _require_symbol(db, symbol)
    return json_page(rows, limit, kind, key)


def json_page(rows: list[dict[str, Any]], limit: int, kind: str, key: str) -> Response:
    """A page (`limit` + 1 rows were asked for: an extra row means there is a next page) as JSON
    bytes. The rows are the marts' own contract-enforced columns, serialised as they come,
    without validating each one against the response model (which still documents them):
    validation was two thirds of the API's own time on a page of 700 rows."""
    more = len(rows) > limit
    rows = rows[:limit]
    body = {"data": rows, "next": cursors.encode(kind, rows[-1][key]) if more else None}
    return Response(pydantic_core.to_json(body, inf_nan_mode="null"), media_type="application/json")


async def _require_symbol(db: Database, symbol: str) -> None:
    found = await db.fetch(queries.SYMBOL_EXISTS, {"symbol": symbol})
    if not found[0]["found"]:
        raise unknown_symbol(symbol)


@router.get(
    "/health",
    response_model=Health,
    tags=["service"],
    summary="The database answers, the freshest trade date loaded, and every read server's state and lag",
    operation_id="getHealth",
    responses=error_responses(500, 503),
)
async def health(db: Db) -> dict[str, Any]:
    row = (await db.fetch(queries.HEALTH))[0]
    return {"status": "ok", **row, "served_by": current_server(), "servers": db.describe_servers()}


@router.get(
    "/symbols",
    response_model=SymbolPage,
    tags=["symbols"],
    summary="Symbols, filtered by asset type and a name search, by pages",
    description=(
        "Rows of `dim_symbols` ordered by symbol, paginated by key: at most "
        f"{MAX_PAGE_SIZE:,} a page, follow `next` for the rest."
    ),
    operation_id="listSymbols",
    responses=error_responses(422, 500, 503, invalid=("cursor", "limit")),
)
async def list_symbols(
    *,
    db: Db,
    asset_type: Annotated[
        str | None, Query(description="`stock` or `etf`.", pattern="^(stock|etf)$", examples=["etf"])
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            pattern=SEARCH_PATTERN,
            description="Search, case-insensitive: symbols starting with it, or names containing it "
            "(`%` and `_` match themselves).",
            examples=["ishares"],
        ),
    ] = None,
    has_prices: Annotated[
        bool | None,
        BeforeValidator(_boolean),
        Query(description="Only symbols with (`true`) or without (`false`) prices."),
    ] = None,
    limit: Limit = 100,
    cursor: SymbolCursor = None,
) -> Response:
    after = None
    if cursor is not None:
        try:
            after = cursors.decode("s", cursor)
        except cursors.BadCursor as exc:
            raise invalid_parameter("query", "cursor", str(exc)) from None
    params = {
        "asset_type": asset_type,
        "has_prices": has_prices,
        "q_prefix": None if q is None else queries.like_pattern(q) + "%",
        "q_contains": None if q is None else "%" + queries.like_pattern(q) + "%",
        "after": after,
        "limit": limit + 1,
    }
    return json_page(await db.fetch(queries.SYMBOLS, params), limit, "s", "symbol")


@router.get(
    "/symbols/{symbol}",
    response_model=Symbol,
    tags=["symbols"],
    summary="A symbol's metadata and price span",
    operation_id="getSymbol",
    responses=error_responses(404, 422, 500, 503, invalid=("symbol",)),
)
async def get_symbol(db: Db, symbol: SymbolPath) -> dict[str, Any]:
    rows = await db.fetch(queries.SYMBOL, {"symbol": symbol})
    if not rows:
        raise unknown_symbol(symbol)
    return rows[0]


@router.get(
    "/symbols/{symbol}/prices",
    response_model=DailyPricePage,
    tags=["prices"],
    summary="Daily bars (`fct_daily_prices`), oldest first, by pages",
    description=f"Paginated by key: at most {MAX_PAGE_SIZE:,} rows a page, follow `next` for the rest.",
    operation_id="listDailyPrices",
    responses=SERIES_ERRORS,
)
async def prices(
    *, db: Db, symbol: SymbolPath, span: Range, limit: Limit = 1000, cursor: PriceCursor = None
) -> Response:
    return await _series_page(
        db, queries.PRICES, kind="d", key="trade_date", symbol=symbol, span=span, limit=limit, cursor=cursor
    )


@router.get(
    "/symbols/{symbol}/averages/{period}",
    response_model=PeriodAveragePage,
    tags=["prices"],
    summary="Weekly, monthly, quarterly or yearly averages and candles, oldest first, by pages",
    description=(
        "Rows of `fct_price_averages_{period}` whose `period_start` is in the range. Paginated by "
        f"key: at most {MAX_PAGE_SIZE:,} rows a page, follow `next` for the rest."
    ),
    operation_id="listPeriodAverages",
    responses=SERIES_ERRORS,
)
async def period_averages(
    *,
    db: Db,
    symbol: SymbolPath,
    period: Annotated[Period, Path(description="The period mart.", examples=["monthly"])],
    span: Range,
    limit: Limit = 1000,
    cursor: AverageCursor = None,
) -> Response:
    sql = queries.PERIOD_AVERAGES[period]
    kind = f"p{period.value[0]}"  # a weekly cursor is no monthly cursor
    return await _series_page(
        db, sql, kind=kind, key="period_start", symbol=symbol, span=span, limit=limit, cursor=cursor
    )


@router.get(
    "/symbols/{symbol}/moving-averages",
    response_model=MovingAveragePage,
    tags=["prices"],
    summary="Simple moving averages of the close over 20, 30, 50 and 200 trading days",
    description=(
        "Rows of `fct_daily_moving_averages`, oldest first; an average is null until its window is "
        f"full. Paginated by key: at most {MAX_PAGE_SIZE:,} rows a page, follow `next` for the rest."
    ),
    operation_id="listMovingAverages",
    responses=SERIES_ERRORS,
)
async def moving_averages(
    *, db: Db, symbol: SymbolPath, span: Range, limit: Limit = 1000, cursor: MovingAverageCursor = None
) -> Response:
    return await _series_page(
        db,
        queries.MOVING_AVERAGES,
        kind="m",
        key="trade_date",
        symbol=symbol,
        span=span,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/symbols/{symbol}/indicators",
    response_model=DailyIndicatorPage,
    tags=["prices"],
    summary="Daily indicators: EMAs, MACD, RSI, ATR, Bollinger bands, returns, volatility, 252-day range",
    description=(
        "Rows of `fct_daily_indicators`, oldest first; each indicator is null until its window is "
        "full (TA-Lib's conventions for the averages, numpy's for returns and volatility). "
        f"Paginated by key: at most {MAX_PAGE_SIZE:,} rows a page, follow `next` for the rest."
    ),
    operation_id="listIndicators",
    responses=error_responses(
        404, 422, 500, 503, invalid=("cursor", "range", "date", "limit", "symbol", "unknown_parameter")
    ),
    dependencies=[known_parameters(*queries.SERIES_PARAMETERS)],
)
async def indicators(
    *, db: Db, symbol: SymbolPath, span: Range, limit: Limit = 1000, cursor: IndicatorCursor = None
) -> Response:
    return await _series_page(
        db,
        queries.INDICATORS,
        kind="i",
        key="trade_date",
        symbol=symbol,
        span=span,
        limit=limit,
        cursor=cursor,
    )


def _flag_query(name: str) -> Any:
    # No example: the document's example call would filter on it, and one flag's `true` may
    # match nothing on a given day.
    return Query(
        description=f"Only symbols whose `{name}` is `true` (or `false`; a null flag matches "
        f"neither): {FLAG_DESCRIPTIONS[name]}",
    )


Flag = Annotated[bool | None, BeforeValidator(_boolean)]


def screen(
    *,
    crossed_above_sma_50: Annotated[Flag, _flag_query("crossed_above_sma_50")] = None,
    crossed_below_sma_50: Annotated[Flag, _flag_query("crossed_below_sma_50")] = None,
    crossed_above_sma_200: Annotated[Flag, _flag_query("crossed_above_sma_200")] = None,
    crossed_below_sma_200: Annotated[Flag, _flag_query("crossed_below_sma_200")] = None,
    golden_cross: Annotated[Flag, _flag_query("golden_cross")] = None,
    death_cross: Annotated[Flag, _flag_query("death_cross")] = None,
    rsi_above_70: Annotated[Flag, _flag_query("rsi_above_70")] = None,
    rsi_below_30: Annotated[Flag, _flag_query("rsi_below_30")] = None,
) -> dict[str, bool | None]:
    """The screener's flag filters: flag -> the value wanted, None for any (keys: the bound
    parameters of queries.SCREENER, one per name of queries.SCREENER_FLAGS)."""
    return {
        "crossed_above_sma_50": crossed_above_sma_50,
        "crossed_below_sma_50": crossed_below_sma_50,
        "crossed_above_sma_200": crossed_above_sma_200,
        "crossed_below_sma_200": crossed_below_sma_200,
        "golden_cross": golden_cross,
        "death_cross": death_cross,
        "rsi_above_70": rsi_above_70,
        "rsi_below_30": rsi_below_30,
    }


@router.get(
    "/screener",
    response_model=LatestDayPage,
    tags=["screener"],
    summary="Each symbol's last trading day with its indicators, filtered by flags, by pages",
    description=(
        "Rows of `fct_latest_day` (one per symbol: its last trading day), ordered by symbol; "
        "each flag given keeps only the rows where that flag equals the value given "
        "(`?crossed_above_sma_200=true&rsi_below_30=true`: both). "
        f"Paginated by key: at most {MAX_PAGE_SIZE:,} rows a page, follow `next` for the rest."
    ),
    operation_id="listScreener",
    responses=error_responses(422, 500, 503, invalid=("cursor", "limit", "unknown_flag")),
    dependencies=[known_parameters(*queries.SCREENER_PARAMETERS)],
)
async def screener(
    *,
    db: Db,
    flags: Annotated[dict[str, bool | None], Depends(screen)],
    limit: Limit = 100,
    cursor: ScreenerCursor = None,
) -> Response:
    after = None
    if cursor is not None:
        try:
            after = cursors.decode("l", cursor)
        except cursors.BadCursor as exc:
            raise invalid_parameter("query", "cursor", str(exc)) from None
    params = {**flags, "after": after, "limit": limit + 1}
    return json_page(await db.fetch(queries.SCREENER, params), limit, "l", "symbol")
