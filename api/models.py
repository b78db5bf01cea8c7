"""Response schemas. Field names are the marts' column names; dates are ISO 8601 strings and
numbers JSON numbers. Each model carries an example from the bundled sample for the OpenAPI
document."""

from __future__ import annotations

from datetime import date
from typing import Any

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
AAPL_INDICATORS = {
    "symbol": "AAPL",
    "trade_date": "2021-01-27",
    "ema_12": 136.2476992427904,
    "ema_26": 132.52293430171483,
    "ema_50": 128.3325094610283,
    "ema_200": 109.04345142902963,
    "macd": 3.7247649410755628,
    "macd_signal": 2.5923538439273734,
    "macd_histogram": 1.1324110971481893,
    "rsi_14": 67.33947903956008,
    "atr_14": 4.027109615184947,
    "bollinger_upper": 143.19135823691417,
    "bollinger_middle": 132.9965000152588,
    "bollinger_lower": 122.80164179360341,
    "return_simple": -0.007683752971338942,
    "return_log": -0.007713425094436053,
    "volatility_20": 0.32693602705826913,
    "volatility_252": 0.4717395184542254,
    "high_252": 143.16000366210938,
    "low_252": 56.092498779296875,
}
AMD_LATEST_DAY = {
    "symbol": "AMD",
    "trade_date": "2021-01-27",
    "close": 88.83999633789062,
    "day_change": -0.06197870133381089,
    "sma_20": 92.16749992370606,
    "sma_50": 91.14480010986328,
    "sma_200": 74.04979997634888,
    "ema_12": 91.88503042732806,
    "ema_26": 91.82900999125997,
    "ema_50": 90.27453912435837,
    "ema_200": 75.84580665577536,
    "macd": 0.05602043606809559,
    "macd_signal": 0.2776875531958321,
    "macd_histogram": -0.2216671171277365,
    "rsi_14": 43.91520498481936,
    "atr_14": 3.6791455759059244,
    "bollinger_upper": 96.98684896966267,
    "bollinger_middle": 92.16749992370606,
    "bollinger_lower": 87.34815087774945,
    "volatility_20": 0.4196081658510219,
    "volatility_252": 0.6128950768281931,
    "high_252": 97.25,
    "low_252": 38.709999084472656,
    "crossed_above_sma_50": False,
    "crossed_below_sma_50": True,
    "crossed_above_sma_200": False,
    "crossed_below_sma_200": False,
    "golden_cross": False,
    "death_cross": False,
    "rsi_above_70": False,
    "rsi_below_30": False,
}


class ServerHealth(BaseModel):
    name: str = Field(description="`primary`, or `replica host:port`.")
    role: str = Field(
        description="`primary` (the libpq server, the last resort) or `replica` (API_READ_SERVERS)."
    )
    host: str | None = Field(default=None, description="Its host (null: libpq's default).")
    port: int | None = Field(default=None, description="Its port (null: libpq's default).")
    state: str = Field(
        description="`up` (reads go to it), `lagging` (a replica further behind than API_MAX_REPLICA_LAG), "
        "`down` (it did not answer the last check), `not-a-replica` (a read server out of recovery), "
        "`unknown` (not checked yet)."
    )
    lag_s: float | None = Field(
        default=None,
        description="A replica's staleness at the last check: seconds since the primary wrote the oldest "
        "change it has not replayed (0: it has replayed everything). Null for the primary.",
    )
    lag_bytes: int | None = Field(
        default=None, description="WAL the replica has still to replay, in bytes. Null for the primary."
    )
    detail: str | None = Field(default=None, description="Why a server is down or not used.")


HEALTH_EXAMPLE = {
    "status": "ok",
    "symbols": 2642,
    "latest_trade_date": "2021-01-27",
    "served_by": "replica localhost:55532",
    "servers": [
        {
            "name": "replica localhost:55532",
            "role": "replica",
            "host": "localhost",
            "port": 55532,
            "state": "up",
            "lag_s": 0.0,
            "lag_bytes": 0,
        },
        {"name": "primary", "role": "primary", "host": "db.example.internal", "port": 5432, "state": "up"},
    ],
}


class Health(BaseModel):
    model_config = _example(HEALTH_EXAMPLE)

    status: str = Field(description="`ok` when a database server answered.")
    symbols: int = Field(description="Rows in `dim_symbols`.")
    latest_trade_date: date | None = Field(description="The freshest trade date loaded (any symbol).")
    served_by: str = Field(description="The server that answered this request (as X-Database-Server).")
    servers: list[ServerHealth] = Field(
        description="Every server reads can go to, replicas first, with its state and lag at the last check."
    )


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


# Descriptions of the indicator columns (docs/indicators.md): TA-Lib's conventions for the
# averages, numpy's for returns and volatility; each null until its window is full.
_EMA = (
    "TA-Lib EMA of the close over {n} trading days: the SMA of the first {n} closes on day {n}, "
    "then `(close - ema) * k + ema` with `k = 2 / {k}`. Null before day {n}."
)
INDICATOR_FIELDS: dict[str, str] = {
    "ema_12": _EMA.format(n=12, k=13),
    "ema_26": _EMA.format(n=26, k=27),
    "ema_50": _EMA.format(n=50, k=51),
    "ema_200": _EMA.format(n=200, k=201),
    "macd": "TA-Lib MACD (12, 26, 9) line: its own fast EMA 12 (started on day 26) minus the EMA 26; "
    "equals `ema_12 - ema_26` once the two EMA 12s have converged. Null before day 34.",
    "macd_signal": "EMA 9 of the MACD line (TA-Lib). Null before day 34.",
    "macd_histogram": "`macd - macd_signal`. Null before day 34.",
    "rsi_14": "TA-Lib RSI 14 (Wilder's smoothing of gains and losses), 0 to 100. Null before day 15.",
    "atr_14": "TA-Lib ATR 14: Wilder's average of the true range `max(high - low, abs(high - previous "
    "close), abs(low - previous close))`; a day without high or low carries the previous ATR. "
    "Null before 14 true ranges.",
    "bollinger_upper": "`bollinger_middle + 2 x` the population standard deviation of the last 20 "
    "closes (TA-Lib BBANDS 20, 2, 2). Null before day 20.",
    "bollinger_middle": "The SMA of the last 20 closes. Null before day 20.",
    "bollinger_lower": "`bollinger_middle - 2 x` the population standard deviation of the last 20 "
    "closes. Null before day 20.",
    "return_simple": "`adj_close / previous adj_close - 1`. Null on the first day, and where either "
    "adjusted close is missing.",
    "return_log": "`ln(adj_close / previous adj_close)`. Null where `return_simple` is.",
    "volatility_20": "Annualised volatility: sample standard deviation (numpy `ddof=1`) of the last "
    "20 log returns `x sqrt(252)`. Null before day 21 and while the window lacks a return.",
    "volatility_252": "The same over the last 252 log returns. Null before day 253 and while the "
    "window lacks a return.",
    "high_252": "Highest close of the last 252 trading days (TA-Lib MAX). Null before day 252.",
    "low_252": "Lowest close of the last 252 trading days (TA-Lib MIN). Null before day 252.",
}


def _indicator(name: str) -> Any:
    return Field(description=INDICATOR_FIELDS[name])


class DailyIndicator(BaseModel):
    """One row of `marts.fct_daily_indicators`: null until each indicator's window is full."""

    model_config = _example(AAPL_INDICATORS)

    symbol: str
    trade_date: date
    ema_12: float | None = _indicator("ema_12")
    ema_26: float | None = _indicator("ema_26")
    ema_50: float | None = _indicator("ema_50")
    ema_200: float | None = _indicator("ema_200")
    macd: float | None = _indicator("macd")
    macd_signal: float | None = _indicator("macd_signal")
    macd_histogram: float | None = _indicator("macd_histogram")
    rsi_14: float | None = _indicator("rsi_14")
    atr_14: float | None = _indicator("atr_14")
    bollinger_upper: float | None = _indicator("bollinger_upper")
    bollinger_middle: float | None = _indicator("bollinger_middle")
    bollinger_lower: float | None = _indicator("bollinger_lower")
    return_simple: float | None = _indicator("return_simple")
    return_log: float | None = _indicator("return_log")
    volatility_20: float | None = _indicator("volatility_20")
    volatility_252: float | None = _indicator("volatility_252")
    high_252: float | None = _indicator("high_252")
    low_252: float | None = _indicator("low_252")


# What each screener flag means on the symbol's last day (docs/indicators.md, "The screener").
# Flags are computed on adj_close, so a split the close is not adjusted for never flags.
FLAG_DESCRIPTIONS: dict[str, str] = {
    "crossed_above_sma_50": "The close is above its 50-day SMA and was at or below it the day before.",
    "crossed_below_sma_50": "The close is below its 50-day SMA and was at or above it the day before.",
    "crossed_above_sma_200": "The close is above its 200-day SMA and was at or below it the day before.",
    "crossed_below_sma_200": "The close is below its 200-day SMA and was at or above it the day before.",
    "golden_cross": "The 50-day SMA crossed above the 200-day SMA.",
    "death_cross": "The 50-day SMA crossed below the 200-day SMA.",
    "rsi_above_70": "The RSI 14 is above 70.",
    "rsi_below_30": "The RSI 14 is below 30.",
}
FLAG_NOTE = (
    " Computed on `adj_close` (a split the close is not adjusted for never flags); null where a "
    "value it compares is missing (fewer than 50 or 200 days)."
)


def _flag(name: str) -> Any:
    return Field(description=FLAG_DESCRIPTIONS[name] + FLAG_NOTE)


class LatestDay(BaseModel):
    """One row of `marts.fct_latest_day`: a symbol's last trading day, its indicators and flags."""

    model_config = _example(AMD_LATEST_DAY)

    symbol: str
    trade_date: date = Field(description="The symbol's last trading day.")
    close: float | None
    day_change: float | None = Field(
        description="The day's simple return on `adj_close`: `adj_close / previous adj_close - 1`."
    )
    sma_20: float | None = Field(description="Simple moving average of the last 20 closes.")
    sma_50: float | None = Field(description="Simple moving average of the last 50 closes.")
    sma_200: float | None = Field(description="Simple moving average of the last 200 closes.")
    ema_12: float | None = _indicator("ema_12")
    ema_26: float | None = _indicator("ema_26")
    ema_50: float | None = _indicator("ema_50")
    ema_200: float | None = _indicator("ema_200")
    macd: float | None = _indicator("macd")
    macd_signal: float | None = _indicator("macd_signal")
    macd_histogram: float | None = _indicator("macd_histogram")
    rsi_14: float | None = _indicator("rsi_14")
    atr_14: float | None = _indicator("atr_14")
    bollinger_upper: float | None = _indicator("bollinger_upper")
    bollinger_middle: float | None = _indicator("bollinger_middle")
    bollinger_lower: float | None = _indicator("bollinger_lower")
    volatility_20: float | None = _indicator("volatility_20")
    volatility_252: float | None = _indicator("volatility_252")
    high_252: float | None = _indicator("high_252")
    low_252: float | None = _indicator("low_252")
    crossed_above_sma_50: bool | None = _flag("crossed_above_sma_50")
    crossed_below_sma_50: bool | None = _flag("crossed_below_sma_50")
    crossed_above_sma_200: bool | None = _flag("crossed_above_sma_200")
    crossed_below_sma_200: bool | None = _flag("crossed_below_sma_200")
    golden_cross: bool | None = _flag("golden_cross")
    death_cross: bool | None = _flag("death_cross")
    rsi_above_70: bool | None = _flag("rsi_above_70")
    rsi_below_30: bool | None = _flag("rsi_below_30")


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


class DailyIndicatorPage(BaseModel):
    model_config = _page_example(AAPL_INDICATORS, "i", "trade_date")

    data: list[DailyIndicator] = Field(description=f"At most {MAX_PAGE_SIZE:,} rows, oldest first.")
    next: str | None = Field(description=NEXT_DESCRIPTION)


class LatestDayPage(BaseModel):
    model_config = _page_example(AMD_LATEST_DAY, "l", "symbol")

    data: list[LatestDay] = Field(description=f"At most {MAX_PAGE_SIZE:,} rows, ordered by symbol.")
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
