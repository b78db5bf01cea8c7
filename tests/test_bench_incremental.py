"""bench/bench_incremental.py's full-refresh check: its comparison finds every kind of
difference between the incremental state and a rebuild, and only those."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.bench_incremental import CHECK_SCHEMA, comparison_sql
from devtools.databases import Database, create_database, drop_database

COLUMNS = "symbol text, trade_date date, close float8, note text, avg_volume numeric"


class AsEveryRole:
    """The bench's Context as far as comparison_sql uses it: queries, whatever the role."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def query(self, sql: str, params: Any = None, role: str = "reader") -> list[tuple]:
        return self.db.query(sql, params)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = create_database(tmp_path / "db")
    database.query(
        f"create schema {CHECK_SCHEMA}; create table {CHECK_SCHEMA}.prices ({COLUMNS}); "
        f"create table public.prices ({COLUMNS})"
    )
    yield database
    drop_database(database)


def compare(db: Database) -> tuple[int, int, int, float, int]:
    sql = comparison_sql(AsEveryRole(db), "prices", "public.prices", ("symbol", "trade_date"))  # type: ignore[arg-type]
    return db.query(sql)[0]


def test_equal_within_the_tolerance_and_each_difference_counted(db: Database) -> None:
    db.query(
        f"insert into {CHECK_SCHEMA}.prices values "
        "('A', '2020-01-01', 1.0, 'x', 10), ('A', '2020-01-02', 2.0, null, 11), "
        "('B', '2020-01-01', 'Infinity', null, 5.5), ('C', '2020-01-01', 1, null, 1); "
        "insert into public.prices values "
        "('A', '2020-01-01', 1.0 + 1e-14, 'x', 10), ('A', '2020-01-02', 2.0, null, 11), "
        "('B', '2020-01-01', 'Infinity', null, 5.5), ('D', '2020-01-01', 1, null, 1)"
    )
    only_rebuilt, only_kept, differing, max_rel, rows = compare(db)
    # D only in the rebuild, C only in the incremental state; 1e-14 relative is equal.
    assert (only_rebuilt, only_kept, differing, rows) == (1, 1, 0, 5)
    assert 0 < max_rel < 1e-13

    db.query("update public.prices set note = 'y' where symbol = 'A' and trade_date = '2020-01-02'")
    assert compare(db)[2] == 1  # a text that differs, against a null
    db.query(
        "update public.prices set note = null where symbol = 'A' and trade_date = '2020-01-02'; "
        "update public.prices set close = 'NaN' where symbol = 'B'; "
        "update public.prices set avg_volume = 10.0000001 where symbol = 'A' and trade_date = '2020-01-01'"
    )
    # The note equal again; NaN against infinity differs, and 1e-8 relative is beyond the tolerance.
    only_rebuilt, only_kept, differing, max_rel, _ = compare(db)
    assert differing == 2 and max_rel == pytest.approx(1e-8, rel=1e-3)
