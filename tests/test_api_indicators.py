"""The API's indicators and screener (`/symbols/{symbol}/indicators`, `/screener`): responses
equal `fct_daily_indicators` and `fct_latest_day`, pages cover every row once, each flag filter
keeps exactly the rows with that flag, and bad input (unknown parameters included) gets the
documented 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from api import cursors, queries
from api.app import create_app
from api.models import AAPL_INDICATORS, AMD_LATEST_DAY, MAX_PAGE_SIZE
from api.settings import Settings
from devtools.databases import Database
from tests.test_api import TEN_KB, all_pages, assert_problem, mart_rows, reader_env

# Reads the built sample, once: the API's behaviour is the same on both TimescaleDB editions,
# and the marts it reads hold the same rows on both (test_incremental_marts.py).
pytestmark = pytest.mark.one_pass

INDICATOR_COLUMNS = (
    "symbol, trade_date, ema_12, ema_26, ema_50, ema_200, macd, macd_signal, macd_histogram, "
    "rsi_14, atr_14, bollinger_upper, bollinger_middle, bollinger_lower, return_simple, return_log, "
    "volatility_20, volatility_252, high_252, low_252"
)
LATEST_DAY_COLUMNS = (
    "symbol, trade_date, close, day_change, sma_20, sma_50, sma_200, ema_12, ema_26, ema_50, "
    "ema_200, macd, macd_signal, macd_histogram, rsi_14, atr_14, bollinger_upper, bollinger_middle, "
    "bollinger_lower, volatility_20, volatility_252, high_252, low_252, " + ", ".join(queries.SCREENER_FLAGS)
)


def indicators_of(db: Database, symbol: str, where: str = "true", params: object = None) -> list[dict]:
    return mart_rows(
        db,
        f"select {INDICATOR_COLUMNS} from marts.fct_daily_indicators "
        f"where symbol = '{symbol}' and {where} order by trade_date",
        params,
    )


def latest_days(db: Database, where: str = "true") -> list[dict]:
    return mart_rows(
        db, f"select {LATEST_DAY_COLUMNS} from marts.fct_latest_day where {where} order by symbol"
    )


@pytest.fixture(scope="module")
def client(sample_db: Database) -> Iterator[TestClient]:
    app = create_app(Settings.from_env(reader_env(sample_db)))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# -- /symbols/{symbol}/indicators -------------------------------------------------------------


def test_indicators_of_a_year_equal_the_mart(client, sample_db):
    params = {"start": "2020-01-01", "end": "2020-12-31"}
    body = client.get("/symbols/AAPL/indicators", params=params).json()
    expected = indicators_of(sample_db, "AAPL", "trade_date between %(start)s and %(end)s", params)
    assert body == {"data": expected, "next": None}
    assert len(expected) == 253 and all(row["volatility_252"] is not None for row in expected)
    # The documented example is the sample's last AAPL row, value for value.
    last = client.get("/symbols/AAPL/indicators", params={"start": "2021-01-27"}).json()["data"]
    assert last == [AAPL_INDICATORS] == indicators_of(sample_db, "AAPL", "trade_date = '2021-01-27'")


def test_indicators_pages_cover_the_history_once_in_order(client, sample_db):
    expected = indicators_of(sample_db, "CAT")
    rows, pages = all_pages(client, "/symbols/CAT/indicators", limit=MAX_PAGE_SIZE)
    assert len(expected) == 14870 and pages == 3
    assert rows == expected
    # Smaller pages inside a range: the same rows, each once, however the pages fall.
    in_range = indicators_of(sample_db, "CAT", "trade_date between '2010-01-01' and '2012-12-31'")
    rows, pages = all_pages(
        client, "/symbols/CAT/indicators", start="2010-01-01", end="2012-12-31", limit=100
    )
    assert rows == in_range and pages == -(-len(in_range) // 100)
    assert len({row["trade_date"] for row in rows}) == len(rows)
    first = client.get("/symbols/CAT/indicators").json()  # default page size
    assert first["data"] == expected[:1000] and first["next"]


def test_indicators_are_null_until_their_window_is_full(client):
    first = client.get("/symbols/AAPL/indicators", params={"limit": 300}).json()["data"]
    # The first trading day of each column, as docs/indicators.md gives them (AAPL has no gap).
    first_day = {
        "ema_12": 12,
        "ema_26": 26,
        "ema_200": 200,
        "macd": 34,
        "macd_signal": 34,
        "rsi_14": 15,
        "atr_14": 15,
        "bollinger_upper": 20,
        "return_simple": 2,
        "return_log": 2,
        "volatility_20": 21,
        "volatility_252": 253,
        "high_252": 252,
    }
    for column, day in first_day.items():
        nulls = [row[column] is None for row in first]
        assert nulls == [True] * (day - 1) + [False] * (300 - day + 1), column


def test_symbol_without_prices_has_no_indicators_not_404(client, sample_db):
    symbol = sample_db.scalar("select min(symbol) from marts.dim_symbols where not has_prices")
    assert client.get(f"/symbols/{symbol}/indicators").json() == {"data": [], "next": None}


# -- /screener --------------------------------------------------------------------------------


def test_screener_pages_cover_fct_latest_day_once_by_symbol(client, sample_db):
    expected = latest_days(sample_db)
    assert len(expected) == 24 == sample_db.scalar("select count(distinct symbol) from marts.fct_latest_day")
    rows, pages = all_pages(client, "/screener", limit=5)
    assert rows == expected and pages == 5
    assert client.get("/screener").json() == {"data": expected, "next": None}  # default: 100 a page
    # The documented example is the sample's AMD row, value for value.
    assert next(row for row in rows if row["symbol"] == "AMD") == AMD_LATEST_DAY


@pytest.mark.parametrize("flag", queries.SCREENER_FLAGS)
def test_each_flag_keeps_exactly_the_rows_with_that_value(client, sample_db, flag):
    everything = latest_days(sample_db)
    for value in ("true", "false"):
        expected = [row for row in everything if row[flag] is (value == "true")]
        assert expected == latest_days(sample_db, f"{flag} = {value}")
        rows, _ = all_pages(client, "/screener", limit=3, **{flag: value})
        assert rows == expected, (flag, value)
    # A null flag (not computable: ABNB has fewer than 200 days) matches neither value.
    if any(row[flag] is None for row in everything):
        assert len(everything) > len(latest_days(sample_db, f"{flag} is not null"))


def test_several_flags_must_all_hold(client, sample_db):
    params = {"crossed_below_sma_50": "true", "golden_cross": "false", "rsi_below_30": "false"}
    expected = latest_days(
        sample_db, "crossed_below_sma_50 and golden_cross = false and rsi_below_30 = false"
    )
    assert [row["symbol"] for row in expected] == ["AMD", "BAC", "CAT", "CVX", "DIS"]
    rows, pages = all_pages(client, "/screener", limit=2, **params)
    assert rows == expected and pages == 3
    # Contradictory flags: nothing, not an error.
    both = {"crossed_below_sma_50": "true", "crossed_above_sma_50": "true"}
    assert client.get("/screener", params=both).json() == {"data": [], "next": None}


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/symbols/ZZZZ/indicators", 404, "No symbol 'ZZZZ'"),
        ("/symbols/aapl/indicators", 404, "case-sensitive"),
        ("/symbols/AAPL%3B/indicators", 422, "symbol: contains characters"),
        (f"/symbols/{quote('ÄPPLÉ')}/indicators", 422, "symbol: contains characters"),
        (f"/symbols/{TEN_KB}/indicators", 422, "symbol"),
        ("/symbols/AAPL/indicators?start=2020-02-30", 422, "start: 2020-02-30 is not a calendar date"),
        ("/symbols/AAPL/indicators?end=yesterday", 422, "end: must be a date as YYYY-MM-DD"),
        ("/symbols/AAPL/indicators?start=86400", 422, "start: must be a date as YYYY-MM-DD"),
        ("/symbols/AAPL/indicators?start=2021-01-02&end=2021-01-01", 422, "end (2021-01-01) is before start"),
        ("/symbols/AAPL/indicators?start=0001-01-01&end=9999-12-31", 422, "at most 36,525"),
        ("/symbols/AAPL/indicators?limit=5001", 422, "limit: Input should be less than or equal to 5000"),
        ("/symbols/AAPL/indicators?limit=0", 422, "limit"),
        ("/symbols/AAPL/indicators?cursor=%%%", 422, "cursor: not a cursor of this list"),
        (f"/symbols/AAPL/indicators?cursor={'A' * 201}", 422, "cursor: not a cursor of this list"),
        ("/symbols/AAPL/indicators?strat=2020-01-01", 422, "strat: not a parameter of this endpoint"),
        ("/symbols/AAPL/indicators?rsi_below_30=true", 422, "rsi_below_30: not a parameter"),
        ("/screener?limit=5001", 422, "limit: Input should be less than or equal to 5000"),
        ("/screener?limit=-1", 422, "limit"),
        ("/screener?limit=ten", 422, "limit"),
        ("/screener?cursor=", 422, "cursor: not a cursor of this list"),
        ("/screener?cursor=bm90IGEgY3Vyc29y", 422, "cursor: not a cursor of this list"),
        # A query boolean is `true` or `false`, as the document says.
        ("/screener?golden_cross=1", 422, "golden_cross: must be true or false"),
        ("/screener?golden_cross=yes", 422, "golden_cross: must be true or false"),
        ("/screener?rsi_below_30=True", 422, "rsi_below_30: must be true or false"),
        ("/screener?rsi_below_30=", 422, "rsi_below_30: must be true or false"),
        # A misspelt flag would otherwise be ignored and every row come back.
        ("/screener?rsi_below30=true", 422, "rsi_below30: not a parameter of this endpoint"),
        ("/screener?start=2020-01-01", 422, "start: not a parameter of this endpoint"),
        (f"/screener?{TEN_KB}=true", 422, "not a parameter of this endpoint"),
    ],
)
def test_bad_input_gets_the_documented_4xx(client, url, status, fragment):
    body = assert_problem(client.get(url), status, fragment)
    if status == 422:
        (error,) = body["errors"]
        assert error["location"] in {"path", "query"} and error["parameter"] in body["detail"]
    assert TEN_KB not in body["detail"] and TEN_KB not in str(body.get("errors"))  # never echoed whole


def test_cursor_of_another_list_is_refused(client):
    indicators = client.get("/symbols/AAPL/indicators", params={"limit": 10}).json()["next"]
    moving = client.get("/symbols/AAPL/moving-averages", params={"limit": 10}).json()["next"]
    symbols = client.get("/symbols", params={"limit": 10}).json()["next"]
    screener = client.get("/screener", params={"limit": 10}).json()["next"]
    assert indicators and moving and symbols and screener
    # Both key on the date (or the symbol), yet one list's cursor is no other's.
    for url, foreign in [
        ("/symbols/AAPL/indicators", moving),
        ("/symbols/AAPL/moving-averages", indicators),
        ("/screener", symbols),
        ("/symbols", screener),
        ("/screener", indicators),
    ]:
        assert_problem(client.get(url, params={"cursor": foreign}), 422, "cursor: not a cursor of this list")
    assert client.get("/screener", params={"cursor": screener}).json()["data"][0]["symbol"] > cursors.decode(
        "l", screener
    )


def test_refused_unknown_parameters_are_exactly_those_the_document_lacks(client):
    # The allowed names are written in api.queries; the document is made from the signatures.
    document = client.get("/openapi.json").json()
    for path, allowed in [
        ("/symbols/{symbol}/indicators", queries.SERIES_PARAMETERS),
        ("/screener", queries.SCREENER_PARAMETERS),
    ]:
        parameters = document["paths"][path]["get"]["parameters"]
        assert {p["name"] for p in parameters if p["in"] == "query"} == set(allowed), path
        assert "not a parameter" in str(document["paths"][path]["get"]["responses"]["422"])
