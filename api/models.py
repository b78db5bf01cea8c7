"""Response schemas. Field names are the marts' column names; dates are ISO 8601 strings and
numbers JSON numbers. Each model carries an example from the bundled sample for the OpenAPI
document."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from api import cursors

MAX_PAGE_SIZE = 5_000

NEXT_DESCRIPTION = (
    "Cursor of the next page: send it back as `cursor`, with the same other parameters. "
    "Null on the last page."
)


def _example(example: dict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


AAPL_SYMBOL = {
    "symbol": "AAPL",
    "security_name": "Apple Inc. - Common Stock",
    "asset_type": "stock",
    "listing_exchange": "NASDAQ",
    "market_category": "Q",
    "is_test_issue": False,
    "financial_status": "N",
    "first_trade_date": "1980-12-12",
    "last_trade_date": "2021-01-27",
    "trading_days": 10116,
    "has_prices": True,
    "has_metadata": True,
}
AAPL_PRICE = {
    "symbol": "AAPL",
    "trade_date": "2021-01-27",
    "open": 143.42999267578125,
    "high": 144.3000030517578,
    "low": 140.41000366210938,
    "close": 142.05999755859375,
    "adj_close": 142.05999755859375,
    "volume": 140843759,
}
AAPL_MONTH = {
    "symbol": "AAPL",
    "period_start": "2021-01-01",
    "trading_days": 17,
    "avg_high": 134.56470803653494,
    "avg_low": 130.68764630485984,
    "avg_volume": 112938668.1764706,
    "avg_close": 132.86176479563994,
    "period_open": 133.52000427246094,
    "period_high": 145.08999633789062,
    "period_low": 126.37999725341797,
    "period_close": 142.05999755859375,
    "total_volume": 1919957359,
}
AAPL_MOVING_AVERAGE = {
    "symbol": "AAPL",
    "trade_date": "2021-01-27",
    "close": 142.05999755859375,
    "sma_20": 132.99650001525876,
    "sma_30": 131.74966684977207,
    "sma_50": 127.05380004882808,
    "sma_200": 106.53903728485105,
}


class Health(BaseModel):
    model_config = _example({"status": "ok", "symbols": 2642, "latest_trade_date": "2021-01-27"})

    status: str = Field(description="`ok` when the database answered.")
    symbols: int = Field(description="Rows in `dim_symbols`.")
    latest_trade_date: date | None = Field(description="The freshest trade date loaded (any symbol).")


class Symbol(BaseModel):
    """One row of `marts.dim_symbols`."""

    model_config = _example(AAPL_SYMBOL)

    symbol: str
    security_name: str | None
    asset_type: str | None = Field(description="`stock` or `etf`.")
    listing_exchange: str | None
    market_category: str | None
    is_test_issue: bool | None
    financial_status: str | None
    first_trade_date: date | None = Field(description="First day with prices; null without prices.")
    last_trade_date: date | None = Field(description="Last day with prices; null without prices.")
    trading_days: int
    has_prices: bool
    has_metadata: bool


class DailyPrice(BaseModel):
    """One row of `marts.fct_daily_prices`."""

    model_config = _example(AAPL_PRICE)

    symbol: str
    trade_date: date
    open: float | None
    high: float | None
    low: float | None
    close: float
    adj_close: float | None
    volume: int | None


class PeriodAverage(BaseModel):
    """One row of `marts.fct_price_averages_{weekly,monthly,quarterly,yearly}`."""

    model_config = _example(AAPL_MONTH)

    symbol: str
    period_start: date = Field(description="First day of the period (weeks start on Monday).")
    trading_days: int
    avg_high: float | None
    avg_low: float | None
    avg_volume: float | None
    avg_close: float | None
    period_open: float | None = Field(description="First positive open of the period.")
    period_high: float | None
    period_low: float | None
    period_close: float | None
    total_volume: int | None


class MovingAverage(BaseModel):
    """One row of `marts.fct_daily_moving_averages`: null until the window is full."""

    model_config = _example(AAPL_MOVING_AVERAGE)

    symbol: str
    trade_date: date
    close: float
    sma_20: float | None
    sma_30: float | None
    sma_50: float | None
    sma_200: float | None


def _page_example(row: dict, kind: str, key: str) -> ConfigDict:
    return _example({"data": [row], "next": cursors.encode(kind, row[key])})


class SymbolPage(BaseModel):
    model_config = _example({"data": [AAPL_SYMBOL], "next": cursors.encode("s", "AAPL")})

    data: list[Symbol] = Field(description=f"At most {MAX_PAGE_SIZE:,} rows, ordered by symbol.")
    next: str | None = Field(description=NEXT_DESCRIPTION)


class DailyPricePage(BaseModel):
    model_config = _page_example(AAPL_PRICE, "d", "trade_date")

    data: list[DailyPrice] = Field(description=f"At most {MAX_PAGE_SIZE:,} rows, oldest first.")
    next: str | None = Field(description=NEXT_DESCRIPTION)


class PeriodAveragePage(BaseModel):
    model_config = _page_example(AAPL_MONTH, "pm", "period_start")

    data: list[PeriodAverage] = Field(description=f"At most {MAX_PAGE_SIZE:,} rows, oldest first.")
    next: str | None = Field(description=NEXT_DESCRIPTION)


class MovingAveragePage(BaseModel):
    model_config = _page_example(AAPL_MOVING_AVERAGE, "m", "trade_date")

    data: list[MovingAverage] = Field(description=f"At most {MAX_PAGE_SIZE:,} rows, oldest first.")
    next: str | None = Field(description=NEXT_DESCRIPTION)


class ParameterError(BaseModel):
    location: str = Field(description="`path` or `query`.", examples=["query"])
    parameter: str = Field(examples=["cursor"])
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    model_config = _example(
        {
            "type": "about:blank",
            "title": "Unknown symbol",
            "status": 404,
            "detail": "No symbol 'ZZZZ' in dim_symbols (symbols are case-sensitive).",
        }
    )

    type: str = Field(description="Always `about:blank`: `title` names the problem.")
    title: str = Field(description="What kind of problem, the same for every error of a kind.")
    status: int = Field(description="The HTTP status code, repeated.")
    detail: str = Field(description="What went wrong with this request, for a person to read.")


class ValidationProblem(Problem):
    """A refused parameter (422): problem details with `errors`, one per refused parameter."""

    model_config = _example(
        {
            "type": "about:blank",
            "title": "Invalid parameter",
            "status": 422,
            "detail": "end: end (2020-01-01) is before start (2021-01-01)",
            "errors": [
                {
                    "location": "query",
                    "parameter": "end",
                    "message": "end (2020-01-01) is before start (2021-01-01)",
                }
            ],
        }
    )

    errors: list[ParameterError] = Field(min_length=1, description="Each refused parameter, and why.")
