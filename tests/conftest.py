"""Fixtures: every test database is created for the run and dropped after it.

TimescaleDB editions: a test marked `community` needs the community license ('timescale') and
one marked `apache` the Apache one; on a server with the other license they are deselected and
the run says so in one line. A test whose result depends on the edition (it runs dbt or reads
the built sample) is marked `editions` where it is written (a decorator, or the module's
pytestmark): `make test` runs the whole suite on the project server and, when that is the
community edition, `-m "(editions or apache or one_pass) and not community"` on an
apache-licensed cluster of its own alongside it (a `one_pass` test, the same on both editions,
runs in that pass only). This file only reads the markers; a test on the built sample without
one stops the collection, so none silently skips the second pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import psycopg2
import pytest

from devtools import databases
from devtools.databases import (
    Database,
    close_as_template,
    copy_database,
    create_database,
    drop_database,
)
from devtools.sample import load_and_build_sample
from tests import support

EDITION_MARKERS = ("community", "apache")
_NOTES = pytest.StashKey[list[str]]()
_UNMARKED = pytest.StashKey[list[str]]()
# Fixtures holding the built sample: their results depend on the edition that built it.
SAMPLE_FIXTURES = ("sample_db", "own_sample_db", "sample_template")


@cache
def _test_server_license() -> tuple[str | None, str | None]:
    """(license, None), or (None, why) when the test server does not answer."""
    try:
        return databases.server_license(), None
    except psycopg2.OperationalError as exc:
        return None, str(exc).strip().splitlines()[0]


def pytest_report_header(config: pytest.Config) -> str:
    license, why = _test_server_license()
    env = databases.server_env()
    where = f"{env.get('PGHOST', 'localhost')}:{env.get('PGPORT', '5432')}"
    return f"TimescaleDB license: {license} ({where})" if why is None else f"test server {where}: {why}"


def pytest_itemcollected(item: pytest.Item) -> None:
    # Here, before `-m` filters the items: every test is checked, whatever the run selects.
    if set(SAMPLE_FIXTURES) & set(getattr(item, "fixturenames", ())) and not any(
        item.get_closest_marker(m) for m in ("editions", "one_pass", *EDITION_MARKERS)
    ):
        item.config.stash.setdefault(_UNMARKED, []).append(item.nodeid)


@pytest.hookimpl(trylast=True)  # after `-m`: what it already removed is not "did not run" here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if unmarked := config.stash.get(_UNMARKED, []):
        raise pytest.UsageError(
            "not marked editions (or one_pass, community, apache), though they use the built sample, "
            "so `make test` would not say on which edition to run them: " + ", ".join(unmarked)
        )
    expected = os.environ.get(support.EXPECTED_LICENSE_VAR)
    marked = [item for item in items if any(item.get_closest_marker(m) for m in EDITION_MARKERS)]
    if not marked and not expected:
        return
    license, why = _test_server_license()
    if expected and license != expected:
        raise pytest.UsageError(
            f"{support.EXPECTED_LICENSE_VAR}={expected}, but the test server's TimescaleDB license is "
            f"{license!r}{f' ({why})' if why else ''}: this pass would not test the edition it should."
        )
    if why is not None:
        return  # no server: the tests fail on their fixtures, with the connection error
    missing = {
        item: support.missing_edition({m.name for m in item.iter_markers()}, license) for item in marked
    }
    deselected = [item for item, edition in missing.items() if edition]
    if not deselected:
        return
    config.hook.pytest_deselected(items=deselected)
    items[:] = [item for item in items if not missing.get(item)]
    config.stash[_NOTES] = [
        support.deselection_note(edition, count, license)
        for edition in EDITION_MARKERS
        if (count := sum(1 for e in missing.values() if e == edition))
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for note in config.stash.get(_NOTES, []):
        terminalreporter.write_line(note, yellow=True, bold=True)


@pytest.fixture(scope="session")
def server_license() -> str | None:
    """The TimescaleDB license of the test server: 'timescale' (community) or 'apache'."""
    return databases.server_license()


@pytest.fixture
def fresh_db(tmp_path: Path) -> Iterator[Database]:
    """An empty database of this test's own."""
    db = create_database(tmp_path / "db")
    yield db
    drop_database(db)


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """The bundled sample loaded and `dbt build` run, closed to connections: what sample_db and
    own_sample_db are copies of (a copy takes seconds, a build minutes)."""
    db = create_database(tmp_path_factory.mktemp("sample_template"))
    load, build = load_and_build_sample(db)
    assert load.returncode == 0, load.stderr
    assert build is not None
    assert build.returncode == 0, build.stdout[-5000:]
    db.build_results = db.dbt_results()
    close_as_template(db)
    yield db
    drop_database(db)


@pytest.fixture(scope="session")
def sample_db(sample_template: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database with the bundled sample loaded and `dbt build` run, shared by the session:
    read it, don't change it (a test that runs dbt or the loader on it takes own_sample_db)."""
    db = copy_database(sample_template, tmp_path_factory.mktemp("sample_db"))
    yield db
    drop_database(db)


@pytest.fixture
def own_sample_db(sample_template: Database, tmp_path: Path) -> Iterator[Database]:
    """The built sample as sample_db has it, in a database of this test's own, to change."""
    db = copy_database(sample_template, tmp_path / "db")
    yield db
    drop_database(db)
