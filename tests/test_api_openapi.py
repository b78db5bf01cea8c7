"""The API's OpenAPI document tells the truth: each operation lists every status it can answer
with the media type and schema of the body it really sends (errors as problem+json), the
cursor is documented as an opaque token with what makes it invalid, the examples work, and
schemathesis, fuzzing the real server over the sample with all its checks, finds nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest
from fastapi.testclient import TestClient

from api import cursors, queries
from api.app import create_app
from api.settings import Settings
from devtools import api_server
from devtools.databases import Database
from devtools.ports import free_port
from devtools.project import PROJECT_DIR

# Reads the built sample, once: the API's behaviour is the same on both TimescaleDB editions,
# and the marts it reads hold the same rows on both (test_incremental_marts.py).
pytestmark = pytest.mark.one_pass

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SCHEMATHESIS_CONFIG = PROJECT_DIR / "schemathesis.toml"
# Bounded and reproducible: about 1,600 requests, 15 s on an idle 2-core machine.
FUZZ_SEED = 42
FUZZ_EXAMPLES = 100
PROBLEM_JSON = "application/problem+json"
LISTS = (
    "listSymbols",
    "listDailyPrices",
    "listPeriodAverages",
    "listMovingAverages",
    "listIndicators",
    "listScreener",
)
# Each operation's statuses: what the API can answer (405 is for methods no operation has).
STATUSES = {
    "getHealth": {"200", "500", "503"},
    "listSymbols": {"200", "422", "500", "503"},
    "getSymbol": {"200", "404", "422", "500", "503"},
    "listDailyPrices": {"200", "404", "422", "500", "503"},
    "listPeriodAverages": {"200", "404", "422", "500", "503"},
    "listMovingAverages": {"200", "404", "422", "500", "503"},
    "listIndicators": {"200", "404", "422", "500", "503"},
    "listScreener": {"200", "422", "500", "503"},
}
# How to make an operation answer each documented 422 example: the parameters to change.
PROVOKE_422: dict[str, dict[str, str | None]] = {
    "cursor": {"cursor": cursors.encode("x", "not this list")},
    "range": {"start": "2021-01-01", "end": "2020-01-01"},
    "date": {"start": "2020-1-1"},
    "limit": {"limit": "5001"},
    "symbol": {"symbol": "A;B"},
}
# The 422 examples of a query parameter the operation does not have: added to its example call.
UNKNOWN_PARAMETERS = {"unknown_parameter": {"strat": "2020-01-01"}, "unknown_flag": {"rsi_below30": "true"}}


# -- helpers ------------------------------------------------------------------------------


def operations(document: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """operationId -> (path, operation) for every GET in the document."""
    return {op["operationId"]: (path, op) for path, item in document["paths"].items() for op in item.values()}


def example_request(
    path: str, operation: dict[str, Any], **changes: str | None
) -> tuple[str, dict[str, str]]:
    """The URL and query of the operation's documented example call, with `changes` (None:
    leave that parameter out)."""
    values = {
        p["name"]: str(p["schema"]["examples"][0])
        for p in operation.get("parameters", [])
        if "examples" in p["schema"]
    }
    values.update(changes)
    values = {name: value for name, value in values.items() if value is not None}
    url = path
    query = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            url = url.replace(f"{{{name}}}", values.pop(name))
        elif name in values:
            query[name] = values.pop(name)
    assert not values, f"no such parameter: {values}"
    return url, query


def check_against_document(
    document: dict[str, Any], operation: dict[str, Any], response: httpx2.Response, status: str
) -> dict[str, Any]:
    """The response is what the document says of `status`: media type, body schema, headers."""
    assert str(response.status_code) == status, (response.status_code, response.text[:300])
    documented = operation["responses"][status]
    (media_type,) = documented["content"]
    assert response.headers["content-type"] == media_type
    body = response.json()
    schema = {**documented["content"][media_type]["schema"], "components": document["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
    for name, header in documented.get("headers", {}).items():
        if name not in response.headers:
            assert not header.get("required"), f"no {name} header"
            continue
        value: Any = response.headers[name]
        if header["schema"]["type"] == "integer":
            value = int(value)
        jsonschema.validate(value, header["schema"])
    return body


@pytest.fixture(scope="module")
def client(sample_db: Database) -> Iterator[TestClient]:
    app = create_app(Settings.from_env(sample_db.role_env("reader")))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


# -- the document -------------------------------------------------------------------------


def test_every_status_an_operation_answers_is_listed_with_its_media_type(document):
    ops = operations(document)
    assert {op_id: set(op["responses"]) for op_id, (_, op) in ops.items()} == STATUSES
    components = document["components"]["schemas"]
    assert "HTTPValidationError" not in components and "ValidationError" not in components
    for op_id, (_, op) in ops.items():
        for status, response in op["responses"].items():
            media_types = set(response["content"])
            assert media_types == ({"application/json"} if status == "200" else {PROBLEM_JSON}), (
                op_id,
                status,
            )
            schema = response["content"][media_types.pop()]["schema"]["$ref"].rsplit("/", 1)[1]
            if status != "200":
                assert schema == ("ValidationProblem" if status == "422" else "Problem"), (op_id, status)
                assert response["content"][PROBLEM_JSON]["examples"], (op_id, status)
            assert response["headers"]["Server-Timing"]["required"] is True
            assert ("Retry-After" in response["headers"]) == (status == "503")
    # The error schemas are the bodies the API sends: every member required, `errors` for 422.
    assert set(components["Problem"]["required"]) == {"type", "title", "status", "detail"}
    assert set(components["ValidationProblem"]["required"]) == {"type", "title", "status", "detail", "errors"}


def test_query_parameters_have_no_null_branch(document):
    for path, op in operations(document).values():
        for parameter in op.get("parameters", []):
            assert "anyOf" not in parameter["schema"], (path, parameter["name"])
            assert parameter["schema"].get("type") or parameter["schema"].get("$ref"), (path, parameter)


def test_cursor_is_an_opaque_token_and_what_makes_it_invalid_is_documented(document):
    ops = operations(document)
    for op_id in LISTS:
        _, op = ops[op_id]
        (cursor,) = [p for p in op["parameters"] if p["name"] == "cursor"]
        assert cursor["in"] == "query" and not cursor.get("required")
        assert cursor["schema"]["type"] == "string"
        assert cursor["schema"]["pattern"] == "^[A-Za-z0-9_-]+$" and cursor["schema"]["maxLength"] == 200
        description = cursor["description"]
        assert description.startswith("Opaque") and "another list" in description and "(422)" in description
        refused = op["responses"]["422"]
        assert "`cursor` that is not a `next` value of this list" in refused["description"], op_id
        assert (
            refused["content"][PROBLEM_JSON]["examples"]["cursor"]["value"]["errors"][0]["parameter"]
            == "cursor"
        )
    # Only the lists whose cursor says what it is (one kind of key) show one as an example.
    examples = {op_id: ops[op_id][1]["parameters"] for op_id in LISTS}
    shown = {
        op_id
        for op_id, params in examples.items()
        for p in params
        if p["name"] == "cursor" and "examples" in p["schema"]
    }
    assert shown == {"listSymbols", "listDailyPrices", "listMovingAverages", "listIndicators", "listScreener"}


def test_the_fuzzer_configuration_relaxes_only_what_the_document_says_in_words(document):
    # What a JSON Schema cannot state (rules over two parameters, or over what the server
    # handed out) is in the 422's words; schemathesis is told only that, for those lists.
    config = tomllib.loads(SCHEMATHESIS_CONFIG.read_text())
    assert set(config) == {"operations"}
    (relaxed,) = config["operations"]
    assert set(relaxed) == {"include-operation-id", "checks"}
    assert sorted(relaxed["include-operation-id"]) == sorted(LISTS)
    assert relaxed["checks"] == {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]}}
    ops = operations(document)
    for op_id in LISTS:
        assert "cursor" in ops[op_id][1]["responses"]["422"]["description"]
    for op_id in ("listDailyPrices", "listPeriodAverages", "listMovingAverages", "listIndicators"):
        assert "`end` before `start`" in ops[op_id][1]["responses"]["422"]["description"]


# -- the document against the API ---------------------------------------------------------------


def test_the_example_calls_answer_200_as_documented(client, document):
    for op_id, (path, op) in operations(document).items():
        url, query = example_request(path, op)
        body = check_against_document(document, op, client.get(url, params=query), "200")
        if "data" in body:
            assert body["data"], (op_id, url, query)  # the examples find rows in the sample
        # The 200's own example (from api.models) fits its schema too.
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        model = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        schema = {"$ref": ref, "components": document["components"]}
        for example in model["examples"]:
            jsonschema.validate(example, schema, cls=jsonschema.Draft202012Validator)


def test_a_followed_cursor_pages_on_and_a_foreign_one_is_the_documented_422(client, document):
    ops = operations(document)
    path, op = ops["listPeriodAverages"]
    url, query = example_request(path, op, period="weekly", limit="5")
    weekly = check_against_document(document, op, client.get(url, params=query), "200")["next"]
    assert weekly
    check_against_document(document, op, client.get(url, params={**query, "cursor": weekly}), "200")
    monthly_url, monthly_query = example_request(path, op, period="monthly", cursor=weekly)
    body = check_against_document(document, op, client.get(monthly_url, params=monthly_query), "422")
    assert body == op["responses"]["422"]["content"][PROBLEM_JSON]["examples"]["cursor"]["value"]


def test_every_documented_404_and_422_example_is_what_the_api_answers(client, document):
    seen = 0
    for op_id, (path, op) in operations(document).items():
        # An unknown symbol is looked up only for a first page (no cursor), so none is sent.
        for status, changes_of in (
            ("404", lambda _: {"symbol": "ZZZZ", "cursor": None}),
            ("422", PROVOKE_422.__getitem__),
        ):
            for name, example in (
                op["responses"]
                .get(status, {})
                .get("content", {})
                .get(PROBLEM_JSON, {})
                .get("examples", {})
                .items()
            ):
                if status == "422" and name in UNKNOWN_PARAMETERS:
                    url, query = example_request(path, op)
                    query.update(UNKNOWN_PARAMETERS[name])
                else:
                    url, query = example_request(path, op, **changes_of(name))
                body = check_against_document(document, op, client.get(url, params=query), status)
                assert body == example["value"], (op_id, name)
                seen += 1
    # 404s, and the 422 examples of each operation (the indicators' and the screener's last).
    assert seen == 5 + 2 + 1 + 3 * 5 + 6 + 3


def test_every_operation_answers_a_bug_with_the_documented_500(client, document, monkeypatch):
    # Every statement fails when it runs, as a bug would: the answer is still the documented one.
    def failing(sql: str) -> str:
        return f"select * from ({sql}) as rows where 1 / 0 = 1"

    for name in (
        "HEALTH",
        "SYMBOLS",
        "SYMBOL",
        "SYMBOL_EXISTS",
        "PRICES",
        "MOVING_AVERAGES",
        "INDICATORS",
        "SCREENER",
    ):
        monkeypatch.setattr(queries, name, failing(getattr(queries, name)))
    for period, sql in queries.PERIOD_AVERAGES.items():
        monkeypatch.setitem(queries.PERIOD_AVERAGES, period, failing(sql))
    for path, op in operations(document).values():
        url, query = example_request(path, op)
        body = check_against_document(document, op, client.get(url, params=query), "500")
        assert body == op["responses"]["500"]["content"][PROBLEM_JSON]["examples"]["internal"]["value"]


def test_every_operation_answers_missing_marts_with_the_documented_503(fresh_db, document):
    with TestClient(create_app(Settings.from_env(fresh_db.env))) as api:
        for path, op in operations(document).values():
            url, query = example_request(path, op)
            body = check_against_document(document, op, api.get(url, params=query), "503")
            assert body == op["responses"]["503"]["content"][PROBLEM_JSON]["examples"]["marts"]["value"]


def test_the_unreachable_database_example_is_what_the_api_answers(document):
    port = free_port()  # nothing listens there
    settings = Settings.from_env({"PGHOST": "127.0.0.1", "PGPORT": str(port), "API_POOL_TIMEOUT": "3"})
    path, op = operations(document)["getHealth"]
    with TestClient(create_app(settings)) as api:
        body = check_against_document(document, op, api.get(path), "503")
    assert body == op["responses"]["503"]["content"][PROBLEM_JSON]["examples"]["unreachable"]["value"]


# -- the fuzzer -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(sample_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real server (`python -m api`, one worker) over the sample, as the reader role."""
    log_path = tmp_path_factory.mktemp("api_fuzz") / "server.log"
    env = {**os.environ, **sample_db.role_env("reader"), "PYTHONUNBUFFERED": "1"}
    proc, url = api_server.start(env, log_path)
    yield url, log_path
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def test_schemathesis_with_all_checks_finds_nothing(server, tmp_path):
    url, log_path = server
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(FUZZ_SEED),
        "--max-examples",
        str(FUZZ_EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",  # no examples remembered from an earlier run: the seed alone decides
        # Hypothesis's own generation-speed check: a busy shared machine is no finding.
        "--suppress-health-check",
        "too_slow",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"schemathesis found something ({' '.join(command)}):\n{output[-20000:]}"
    assert re.search(r"No issues found in [\d.]+s", output), output[-3000:]
    assert "Selected: 8/8" in output and "Tested: 8" in output, output[-3000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅ {phase}\b", output), (phase, output[-3000:])
    generated, passed = map(int, re.search(r"(\d+) generated, (\d+) passed", output).groups())
    assert generated == passed and generated > 1000, output[-3000:]
    assert "Traceback" not in log_path.read_text()
    assert elapsed < 300, f"{generated} requests took {elapsed:.0f} s"  # bounded: a few minutes at most
