"""The HTTP API (api/): responses equal the marts, bad input gets a clear 4xx, injection
strings change nothing, a lost database gives 503 and the API recovers by itself, the real
uvicorn server logs latency and runs workers, and /docs works with no network."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from api import cursors, queries
from api.app import create_app
from api.models import MAX_PAGE_SIZE
from api.routes import json_page
from api.settings import Settings, SettingsError
from devtools import api_server
from devtools.databases import Database
from devtools.project import MARTS, PROJECT_DIR
from tests import support

PERIODS = ("weekly", "monthly", "quarterly", "yearly")
PRICE_COLUMNS = "symbol, trade_date, open, high, low, close, adj_close, volume"
AVERAGE_COLUMNS = (
    "symbol, period_start, trading_days, avg_high, avg_low, avg_volume, avg_close, "
    "period_open, period_high, period_low, period_close, total_volume"
)
MA_COLUMNS = "symbol, trade_date, close, sma_20, sma_30, sma_50, sma_200"


# -- helpers ------------------------------------------------------------------------------


def reader_env(db: Database) -> dict[str, str]:
    """The libpq variables of the read-only `reader` role on the test database: the API runs as it."""
    return db.role_env("reader")


def mart_rows(db: Database, sql: str, params: Any = None) -> list[dict[str, Any]]:
    """Rows straight from the marts, as the API should render them (dates ISO 8601)."""
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            names = [col.name for col in cur.description]
            return [
                {k: v.isoformat() if isinstance(v, date) else v for k, v in zip(names, row, strict=True)}
                for row in cur.fetchall()
            ]
    finally:
        conn.close()


def all_pages(client: TestClient | httpx2.Client, url: str, **params: Any) -> tuple[list[dict], int]:
    """Every row of a paginated list, following `next`; and how many pages it took."""
    rows, pages, cursor = [], 0, None
    while True:
        response = client.get(url, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        rows += body["data"]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            return rows, pages
        assert len(body["data"]) == params.get("limit", len(body["data"]))


def marts_fingerprint(db: Database) -> dict[str, tuple[int, int]]:
    """Row count and a content hash of every mart: equal before and after means untouched."""
    return {
        mart: tuple(
            db.query(f"select count(*), coalesce(sum(hashtext(t::text)::bigint), 0) from marts.{mart} t")[0]
        )
        for mart in MARTS
    }


def assert_problem(response: httpx2.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and "psycopg" not in response.text
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


@pytest.fixture(scope="module")
def client(sample_db: Database) -> Iterator[TestClient]:
    app = create_app(Settings.from_env(reader_env(sample_db)))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# -- responses equal the marts --------------------------------------------------------------
# The tests that read the built sample run once (one_pass): the API's behaviour is the same on
# both TimescaleDB editions. The period averages, a continuous aggregate or a table by
# edition, are read on both.


@pytest.mark.one_pass
def test_health_gives_the_freshest_trade_date(client, sample_db):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("status", "symbols", "latest_trade_date")} == {
        "status": "ok",
        "symbols": sample_db.scalar("select count(*) from marts.dim_symbols"),
        "latest_trade_date": sample_db.scalar(
            "select max(trade_date) from marts.fct_daily_prices"
        ).isoformat(),
    }
    # No API_READ_SERVERS: the primary alone, and it answered.
    assert body["served_by"] == response.headers["x-database-server"] == "primary"
    assert [(s["role"], s["state"]) for s in body["servers"]] == [("primary", "up")]
    timing = response.headers["server-timing"]
    assert re.fullmatch(r"db;dur=[\d.]+, wait;dur=[\d.]+, app;dur=[\d.]+", timing), timing


@pytest.mark.one_pass
def test_symbols_pages_cover_dim_symbols_once_in_order(client, sample_db):
    expected = mart_rows(sample_db, "select * from marts.dim_symbols order by symbol")
    rows, pages = all_pages(client, "/symbols", limit=1000)
    assert pages == -(-len(expected) // 1000) and len(expected) > 2000
    assert rows == expected
    first = client.get("/symbols").json()  # default page size
    assert first["data"] == expected[:100] and first["next"]


@pytest.mark.one_pass
@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"asset_type": "etf"}, "asset_type = 'etf'"),
        ({"asset_type": "stock", "has_prices": "true"}, "asset_type = 'stock' and has_prices"),
        ({"has_prices": "false"}, "not has_prices"),
    ],
)
def test_symbols_filters_equal_the_mart(client, sample_db, params, where):
    expected = mart_rows(sample_db, f"select * from marts.dim_symbols where {where} order by symbol")
    rows, _ = all_pages(client, "/symbols", limit=500, **params)
    assert rows == expected and expected


@pytest.mark.one_pass
@pytest.mark.parametrize("q", ["apple", "AAP", "ishares", "%", "_", "5%", "o'reilly"])
def test_symbols_search_is_literal_and_case_insensitive(client, sample_db, q):
    everything = mart_rows(sample_db, "select * from marts.dim_symbols order by symbol")
    needle = q.lower()
    expected = [
        row
        for row in everything
        if row["symbol"].lower().startswith(needle) or needle in (row["security_name"] or "").lower()
    ]
    rows, _ = all_pages(client, "/symbols", q=q, limit=MAX_PAGE_SIZE)
    assert rows == expected
    assert len(rows) < len(everything)  # `%` and `_` are characters here, not wildcards
    if q == "apple":
        assert "AAPL" in {row["symbol"] for row in rows}


@pytest.mark.one_pass
def test_symbol_metadata_and_price_span(client, sample_db):
    expected = mart_rows(sample_db, "select * from marts.dim_symbols where symbol = 'AAPL'")
    assert client.get("/symbols/AAPL").json() == expected[0]
    assert expected[0]["first_trade_date"] == "1980-12-12"


@pytest.mark.one_pass
def test_daily_prices_of_a_quarter_equal_the_mart(client, sample_db):
    params = {"start": "2020-01-01", "end": "2020-03-31"}
    body = client.get("/symbols/AAPL/prices", params=params).json()
    expected = mart_rows(
        sample_db,
        f"select {PRICE_COLUMNS} from marts.fct_daily_prices where symbol = 'AAPL' "
        "and trade_date between %(start)s and %(end)s order by trade_date",
        params,
    )
    assert body == {"data": expected, "next": None}
    assert len(expected) == 62 and isinstance(body["data"][0]["volume"], int)


@pytest.mark.one_pass
def test_full_history_pages_at_5000_rows(client, sample_db):
    expected = mart_rows(
        sample_db,
        f"select {PRICE_COLUMNS} from marts.fct_daily_prices where symbol = 'CAT' order by trade_date",
    )
    rows, pages = all_pages(client, "/symbols/CAT/prices", limit=MAX_PAGE_SIZE)
    assert len(expected) == 14870 and pages == 3
    assert rows == expected


@pytest.mark.editions
@pytest.mark.parametrize("period", PERIODS)
def test_period_averages_equal_the_mart(client, sample_db, period):
    sql = (
        f"select {AVERAGE_COLUMNS} from marts.fct_price_averages_{period} where symbol = 'AAPL' "
        "and period_start between %s and %s order by period_start"
    )
    every = mart_rows(sample_db, sql, (date(1, 1, 1), date(9999, 12, 31)))
    rows, _ = all_pages(client, f"/symbols/AAPL/averages/{period}", limit=200)
    assert rows == every and every
    in_range = client.get(
        f"/symbols/AAPL/averages/{period}", params={"start": "2015-02-01", "end": "2019-06-30"}
    ).json()
    assert in_range["data"] == mart_rows(sample_db, sql, (date(2015, 2, 1), date(2019, 6, 30)))


@pytest.mark.one_pass
def test_moving_averages_of_a_year_equal_the_mart(client, sample_db):
    body = client.get(
        "/symbols/AAPL/moving-averages", params={"start": "2020-01-01", "end": "2020-12-31"}
    ).json()
    expected = mart_rows(
        sample_db,
        f"select {MA_COLUMNS} from marts.fct_daily_moving_averages where symbol = 'AAPL' "
        "and trade_date between '2020-01-01' and '2020-12-31' order by trade_date",
    )
    assert body == {"data": expected, "next": None}
    assert len(expected) == 253 and all(row["sma_200"] is not None for row in body["data"])
    # The first rows of a history: averages stay null until their window is full.
    first = client.get("/symbols/AAPL/moving-averages", params={"limit": 25}).json()["data"]
    assert [row["sma_20"] is None for row in first] == [True] * 19 + [False] * 6


def test_a_page_is_valid_json_even_for_a_non_finite_number():
    # The marts refuse NaN and infinity; should one slip through, it must not make invalid JSON.
    response = json_page([{"k": "2020-01-01", "v": float("nan")}, {"k": "2020-01-02", "v": 1.5}], 1, "d", "k")
    assert json.loads(response.body) == {
        "data": [{"k": "2020-01-01", "v": None}],
        "next": cursors.encode("d", "2020-01-01"),
    }


@pytest.mark.one_pass
def test_symbol_without_prices_has_empty_series_not_404(client, sample_db):
    symbol = sample_db.scalar("select min(symbol) from marts.dim_symbols where not has_prices")
    assert client.get(f"/symbols/{symbol}").json()["has_prices"] is False
    for path in ("prices", "moving-averages", "averages/monthly"):
        assert client.get(f"/symbols/{symbol}/{path}").json() == {"data": [], "next": None}


# -- bad input: a clear 4xx, never a 500 ------------------------------------------------------

TEN_KB = "A" * 10_240


@pytest.mark.one_pass
@pytest.mark.parametrize(
    ("url", "status", "fragment"),
    [
        ("/symbols/ZZZZ", 404, "No symbol 'ZZZZ'"),
        ("/symbols/ZZZZ/prices", 404, "No symbol 'ZZZZ'"),
        ("/symbols/ZZZZ/averages/monthly", 404, "No symbol 'ZZZZ'"),
        ("/symbols/ZZZZ/moving-averages", 404, "No symbol 'ZZZZ'"),
        ("/symbols/aapl", 404, "case-sensitive"),
        ("/symbols/AAPL/averages/daily", 422, "period: must be one of 'weekly', 'monthly'"),
        ("/symbols/AAPL/prices?start=2020-13-01", 422, "start: 2020-13-01 is not a calendar date"),
        ("/symbols/AAPL/prices?start=2020-02-30", 422, "is not a calendar date"),
        ("/symbols/AAPL/prices?end=yesterday", 422, "end: must be a date as YYYY-MM-DD"),
        ("/symbols/AAPL/prices?start=86400", 422, "start: must be a date as YYYY-MM-DD"),
        ("/symbols/AAPL/prices?start=2020-1-1", 422, "start: must be a date"),
        # Digits of another script are no ISO 8601 date (`\d` would take them).
        (f"/symbols/AAPL/prices?start={quote('٢٠٢٠-01-01')}", 422, "start: must be a date as YYYY-MM-DD"),
        ("/symbols/AAPL/prices?start=2021-01-02&end=2021-01-01", 422, "end (2021-01-01) is before start"),
        ("/symbols/AAPL/moving-averages?start=0001-01-01&end=9999-12-31", 422, "at most 36,525"),
        ("/symbols/AAPL/prices?limit=5001", 422, "limit: Input should be less than or equal to 5000"),
        ("/symbols?limit=0", 422, "limit"),
        ("/symbols?limit=-1", 422, "limit"),
        ("/symbols?limit=ten", 422, "limit"),
        ("/symbols?asset_type=bond", 422, "asset_type"),
        ("/symbols?has_prices=maybe", 422, "has_prices"),
        # A query boolean is `true` or `false`, as the document says: not pydantic's other spellings.
        ("/symbols?has_prices=1", 422, "has_prices: must be true or false"),
        ("/symbols?has_prices=0", 422, "has_prices: must be true or false"),
        ("/symbols?has_prices=yes", 422, "has_prices: must be true or false"),
        ("/symbols?has_prices=True", 422, "has_prices: must be true or false"),
        ("/symbols?q=", 422, "q"),
        (f"/symbols?q={TEN_KB}", 422, "q"),
        ("/symbols?q=a%00b", 422, "q: contains characters"),
        ("/symbols?cursor=bm90IGEgY3Vyc29y", 422, "cursor: not a cursor of this list"),
        ("/symbols/AAPL/prices?cursor=%%%", 422, "cursor: not a cursor of this list"),
        (f"/symbols/AAPL/prices?cursor={'A' * 201}", 422, "cursor: not a cursor of this list"),
        ("/symbols?cursor=", 422, "cursor: not a cursor of this list"),
        (f"/symbols/{quote(chr(39))}AAPL", 422, "symbol: contains characters"),
        ("/symbols/AAPL%3B", 422, "symbol: contains characters"),
        ("/symbols/AAPL%25", 422, "symbol: contains characters"),
        (f"/symbols/{quote('ÄPPLÉ')}", 422, "symbol: contains characters"),
        (f"/symbols/{quote('株式')}/prices", 422, "symbol"),
        (f"/symbols/{TEN_KB}", 422, "symbol"),
        ("/no/such/endpoint", 404, "No such endpoint"),
    ],
)
def test_bad_input_gets_a_clear_4xx(client, url, status, fragment):
    body = assert_problem(client.get(url), status, fragment)
    if status == 422:
        assert body["errors"] and {"location", "parameter", "message"} <= body["errors"][0].keys()
    assert TEN_KB not in body["detail"]  # the input is never echoed back whole


@pytest.mark.one_pass
def test_cursor_of_another_list_is_refused(client):
    weekly = client.get("/symbols/AAPL/averages/weekly", params={"limit": 10}).json()["next"]
    assert weekly
    assert_problem(
        client.get("/symbols/AAPL/averages/monthly", params={"cursor": weekly}),
        422,
        "cursor: not a cursor of this list",
    )
    assert (
        client.get("/symbols/AAPL/averages/weekly", params={"cursor": weekly, "limit": 1}).status_code == 200
    )


@pytest.mark.one_pass
def test_unexpected_error_is_a_500_problem_with_the_trace_in_the_log_only(client, monkeypatch, caplog):
    # A query that fails in a way no handler expects stands in for a bug.
    monkeypatch.setattr(
        queries, "SYMBOL", "select * from marts.dim_symbols where symbol = %(symbol)s and 1/0 = 1"
    )
    body = assert_problem(client.get("/symbols/AAPL"), 500, "has been logged")
    assert body["title"] == "Internal error"
    assert "division by zero" in caplog.text and "Traceback" in caplog.text
    monkeypatch.undo()
    assert client.get("/symbols/AAPL").status_code == 200  # and the API goes on answering


def test_database_without_marts_gives_503(fresh_db):
    # Before the first dbt build, or while dbt rebuilds staging (it drops the mart views with it).
    with TestClient(create_app(Settings.from_env(fresh_db.env))) as api:
        for url in (
            "/health",
            "/symbols/AAPL",
            "/symbols/AAPL/prices",
            "/symbols/AAPL/averages/weekly",
            "/symbols/AAPL/indicators",
            "/screener",
        ):
            assert_problem(api.get(url), 503, "marts are not available")


@pytest.mark.one_pass
def test_wrong_method_is_a_problem_json(client):
    assert_problem(client.post("/symbols/AAPL"), 405)


INJECTIONS = [
    "'",
    '"',
    "';--",
    "AAPL'; drop table marts.dim_symbols; --",
    "AAPL; delete from marts.fct_daily_prices",
    "' or '1'='1",
    '" or ""="',
    "1) or (1=1",
    "%",
    "%%",
    "_",
    "AAPL%",
    "\\",
    "\\'",
    "%s",
    "%(symbol)s",
    "$1",
    "{}",
    "\x00",
    "AAPL\x00",
    "AAPL\n--",
    "ÄPPLÉ",
    "株式",
    "😀",
    "\u202e",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "null",
    "-1",
    "9" * 40,
    "1e400",
    "2020-01-01'; drop table marts.dim_symbols; --",
    "2020-01-01 or 1=1",
    TEN_KB,
]


def _injection_requests() -> Iterator[tuple[str, dict[str, str]]]:
    """Each injection string in every parameter of every endpoint, one at a time."""
    for s in INJECTIONS:
        symbol = quote(s, safe="")
        yield f"/symbols/{symbol}", {}
        yield f"/symbols/{symbol}/prices", {}
        yield f"/symbols/{symbol}/moving-averages", {}
        yield f"/symbols/{symbol}/averages/monthly", {}
        yield f"/symbols/AAPL/averages/{symbol}", {}
        yield f"/symbols/{symbol}/indicators", {}
        for param in ("asset_type", "q", "has_prices", "limit", "cursor"):
            yield "/symbols", {param: s}
        for path in ("prices", "moving-averages", "averages/yearly", "indicators"):
            for param in ("start", "end", "limit", "cursor"):
                yield f"/symbols/AAPL/{path}", {param: s}
        for param in queries.SCREENER_PARAMETERS:
            yield "/screener", {param: s}
        # As a parameter's name too: refused as unknown, and not echoed whole.
        yield "/screener", {s: "true"}
        yield "/symbols/AAPL/indicators", {s: "2020-01-01"}


@pytest.mark.one_pass
def test_injection_strings_in_every_parameter_change_nothing(client, sample_db):
    before = marts_fingerprint(sample_db)
    seen: dict[int, int] = {}
    for url, params in _injection_requests():
        response = client.get(url, params=params)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (url, params, response.text[:300])
        if response.status_code != 200:
            assert_problem(response, response.status_code)
        elif "q" in params:  # a search for the text itself, not SQL: few or no matches
            assert len(response.json()["data"]) < 100, (params, len(response.json()["data"]))
    assert set(seen) <= {200, 404, 422} and seen[422] > 300, seen
    assert marts_fingerprint(sample_db) == before
    # And the API still answers with the same data.
    assert client.get("/symbols/AAPL").json()["trading_days"] == 10116


# -- the OpenAPI document ---------------------------------------------------------------------


@pytest.mark.one_pass
def test_openapi_document_validates_and_states_limits_and_examples(client):
    schema = client.get("/openapi.json").json()
    validate(schema)
    operations = {path: ops["get"] for path, ops in schema["paths"].items()}
    assert set(operations) == {
        "/health",
        "/symbols",
        "/symbols/{symbol}",
        "/symbols/{symbol}/prices",
        "/symbols/{symbol}/averages/{period}",
        "/symbols/{symbol}/moving-averages",
        "/symbols/{symbol}/indicators",
        "/screener",
    }
    components = schema["components"]["schemas"]
    for path, op in operations.items():
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert components[ref.rsplit("/", 1)[1]].get("examples"), f"{path}: no example"
        params = {p["name"]: p for p in op.get("parameters", [])}
        if "limit" in params:  # every list states its page cap
            assert params["limit"]["schema"]["maximum"] == MAX_PAGE_SIZE
            assert "5,000" in op["description"] and "next" in op["description"]
        if path != "/health":
            assert {"422", "503"} <= op["responses"].keys()
    period = next(
        p for p in operations["/symbols/{symbol}/averages/{period}"]["parameters"] if p["name"] == "period"
    )
    assert components[period["schema"]["$ref"].rsplit("/", 1)[1]]["enum"] == list(PERIODS)


# -- settings ------------------------------------------------------------------------------------


def test_settings_come_from_the_environment_and_bad_values_are_refused():
    settings = Settings.from_env({"PGHOST": "db.example", "PGUSER": "reader", "API_POOL_MAX_SIZE": "9"})
    assert settings.connection == {"host": "db.example", "user": "reader"} and settings.pool_max_size == 9
    assert "password" not in settings.describe()
    with pytest.raises(SettingsError, match="API_POOL_TIMEOUT='soon' is not a valid float"):
        Settings.from_env({"API_POOL_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match="exceeds API_POOL_MAX_SIZE"):
        Settings.from_env({"API_POOL_MIN_SIZE": "5", "API_POOL_MAX_SIZE": "2"})
    proc = subprocess.run(
        [sys.executable, "-m", "api"],
        env={**os.environ, "API_POOL_MAX_SIZE": "0"},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "API_POOL_MAX_SIZE='0': must be at least 1" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "api/serve.py", "--port", "70000"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "not a TCP port" in proc.stderr


# -- the database going away ------------------------------------------------------------------


class TcpProxy:
    """A TCP relay on 127.0.0.1 in front of the test server: stop() drops every connection and
    refuses new ones (the database "goes away"), start() listens again on the same port. The
    shared cluster itself is never touched."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def _upstream(self) -> socket.socket:
        host, port = self.target
        if host.startswith("/"):  # a Unix socket directory, as libpq takes it
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(f"{host}/.s.PGSQL.{port}")
            return sock
        return socket.create_connection((host, port))

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = self._upstream()
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def wait_for_status(client: TestClient, url: str, status: int, timeout: float) -> float:
    started = time.monotonic()
    while (response := client.get(url)).status_code != status:
        assert time.monotonic() - started < timeout, (url, response.status_code, response.text)
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.one_pass
def test_database_going_away_gives_503_and_the_api_recovers(sample_db):
    env = reader_env(sample_db)
    proxy = TcpProxy(env.get("PGHOST", "localhost"), int(env.get("PGPORT", "5432")))
    proxy.start()
    proxy.stop()  # down before the API starts: it must start anyway and say 503
    settings = Settings.from_env(
        {
            **env,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(proxy.port),
            "API_POOL_TIMEOUT": "1",
            "API_RECONNECT_TIMEOUT": "1",
        }
    )
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as api:
            body = assert_problem(api.get("/health"), 503, "not reachable")
            assert body["title"] == "Database unavailable"
            assert api.get("/health").headers["retry-after"] == "5"

            proxy.start()
            assert wait_for_status(api, "/health", 200, timeout=15) < 15
            expected = api.get(
                "/symbols/AAPL/prices", params={"start": "2020-01-01", "end": "2020-01-31"}
            ).json()
            assert len(expected["data"]) == 21

            proxy.stop()  # goes away under a running API with pooled connections
            for url in ("/symbols/AAPL", "/symbols/AAPL/prices", "/symbols?limit=5", "/health"):
                started = time.monotonic()
                assert_problem(api.get(url), 503)
                assert time.monotonic() - started < 5  # answered in seconds, not at a client timeout

            proxy.start()
            wait_for_status(api, "/health", 200, timeout=15)
            again = api.get(
                "/symbols/AAPL/prices", params={"start": "2020-01-01", "end": "2020-01-31"}
            ).json()
            assert again == expected
    finally:
        proxy.stop()


# -- the real server: uvicorn, workers, access log ----------------------------------------------


@pytest.fixture(scope="module")
def server(sample_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`python -m api --workers 2` on a free port, as the reader role."""
    log_path = tmp_path_factory.mktemp("api_server") / "server.log"
    env = {**os.environ, **reader_env(sample_db), "PYTHONUNBUFFERED": "1"}
    proc, url = api_server.start(env, log_path, workers=2)
    info = {"url": url, "proc": proc, "log": log_path}
    yield info
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.one_pass
def test_uvicorn_server_with_workers_logs_each_request_with_latency(server, sample_db):
    url, log = server["url"], server["log"]
    with httpx2.Client(base_url=url, timeout=10) as http:
        expected = mart_rows(sample_db, "select * from marts.dim_symbols where symbol = 'EWJ'")[0]

        def fresh_connection_get(_: int) -> Any:  # a new connection each: the workers share them out
            return httpx2.get(f"{url}/symbols/EWJ", headers={"Connection": "close"}, timeout=10).json()

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(fresh_connection_get, range(40))) == [expected] * 40
        rows, pages = all_pages(http, "/symbols/EWJ/averages/quarterly", limit=20)
        assert rows == mart_rows(
            sample_db,
            f"select {AVERAGE_COLUMNS} from marts.fct_price_averages_quarterly where symbol = 'EWJ' "
            "order by period_start",
        )
        assert pages > 1
        assert_problem(http.get(f"/symbols/{TEN_KB}"), 422)
    deadline = time.monotonic() + 10
    pattern = re.compile(
        r' (\d+) INFO api\.access: 127\.0\.0\.1:\d+ "GET /symbols/EWJ" 200 \d+B '
        r"[\d.]+ms db=[\d.]+ms/1 wait=[\d.]+ms"
    )
    # A worker writes its access line after the response has gone: wait for all of them,
    # the 10 KB request's (the last one) included.
    while len(pattern.findall(text := log.read_text())) < 40 or "...(truncated)" not in text:
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.2)
    workers = set(re.findall(r"Started server process \[(\d+)\]", text))
    assert len(workers) == 2, text[:3000]
    assert set(pattern.findall(text)) == workers, "both workers answered"
    assert "...(truncated)" in text and TEN_KB not in text  # a 10 KB URL is not logged whole
    assert "Traceback" not in text


@pytest.mark.one_pass
def test_uvicorn_server_stops_cleanly_on_sigterm(server):
    # Runs after the other server tests of this module (pytest keeps file order).
    proc = server["proc"]
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "Finished server process" in server["log"].read_text()


# -- /docs offline, in headless Chromium ----------------------------------------------------------


@pytest.fixture(scope="module")
def docs_server(sample_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-worker server of its own, so the browser test does not depend on the one above."""
    log_path = tmp_path_factory.mktemp("api_docs") / "server.log"
    proc, url = api_server.start({**os.environ, **reader_env(sample_db)}, log_path)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


@pytest.mark.one_pass
def test_docs_assets_are_served_locally(client):
    page = client.get("/docs").text
    assert "cdn" not in page.lower() and "https://" not in page
    for asset in re.findall(r'(?:href|src)="(/[^"]+)"', page):
        assert client.get(asset).status_code == 200, asset
    redoc = client.get("/redoc").text
    assert "fonts.googleapis" not in redoc and "https://" not in redoc
    assert client.get("/favicon.ico").headers["content-type"] == "image/png"
    for script in ("/docs-assets/redoc.standalone.js", "/docs-assets/swagger-ui-bundle.js"):
        assert "cdn." not in client.get(script).text, script  # ReDoc's logo URL is swapped out


@pytest.mark.one_pass
@pytest.mark.parametrize(
    ("page", "selector"),
    [("docs", ".swagger-ui .opblock"), ("redoc", ".redoc-wrap [data-section-id]")],
)
def test_docs_pages_work_offline_in_chromium(docs_server, page, selector):
    browser = importlib.import_module("tests.browser")  # another module's job: drive Chromium
    assert browser.chromium_available(), "headless Chromium (/usr/bin/chromium) and playwright are needed"
    # one file a pass: make test runs the apache pass alongside the suite
    license = os.environ.get(support.EXPECTED_LICENSE_VAR, "server")
    shot = PROJECT_DIR / "target" / f"api_{page}_{license}.png"
    # ReDoc's page is 6,000 px tall: the screenshot shows the first screen, readable.
    report = browser.open_page(
        f"{docs_server}/{page}",
        screenshot=shot,
        wait_ms=2500,
        selectors=(selector,),
        full_page=page == "docs",
    )
    assert report.problems == [], report.problems  # no console error, failed or external request
    origin = urlsplit(docs_server)
    foreign = [
        url
        for url in report.requests
        if urlsplit(url).scheme not in {"data", "blob", "about"} and urlsplit(url).netloc != origin.netloc
    ]
    assert foreign == [], foreign  # nothing leaves the API's own origin, not even for localhost
    assert f"{docs_server}/openapi.json" in report.requests
    boxes = report.elements[selector]
    assert len(boxes) >= 6 and all(w > 100 and h > 10 for w, h in boxes), boxes  # one per endpoint, visible
    assert shot.stat().st_size > 20_000
