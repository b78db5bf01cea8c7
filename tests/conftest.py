"""Fixtures: every test database is created for the run and dropped after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import SAMPLE_DIR, Database, create_database, drop_database


@pytest.fixture
def fresh_db(tmp_path: Path) -> Iterator[Database]:
    """An empty database of this test's own."""
    db = create_database(tmp_path / "db")
    yield db
    drop_database(db)


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One database with the bundled sample loaded and `dbt build` run: read it, don't change it."""
    db = create_database(tmp_path_factory.mktemp("sample_db"))
    proc = db.run_loader(SAMPLE_DIR)
    assert proc.returncode == 0, proc.stderr
    build = db.dbt("build")
    assert build.returncode == 0, build.stdout[-5000:]
    db.build_results = db.dbt_results()  # later dbt commands in the session overwrite the file
    yield db
    drop_database(db)
