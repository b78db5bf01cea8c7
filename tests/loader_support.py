"""Helpers for the loader tests: write price files, check that the accounting adds up."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from devtools.databases import Database

HEADER = b"Date,Open,High,Low,Close,Adj Close,Volume\n"


def price_rows(n: int, start_year: int = 2020) -> bytes:
    """n clean, distinct daily rows."""
    lines = []
    for i in range(n):
        day = f"{start_year + i // 336}-{(i // 28) % 12 + 1:02d}-{i % 28 + 1:02d}"
        price = 10 + i * 0.01
        lines.append(
            f"{day},{price:.4f},{price + 1:.4f},{price - 1:.4f},{price + 0.5:.4f},{price:.4f},{1000 + i}\n"
        )
    return "".join(lines).encode()


def write(folder: Path, name: str, content: bytes, compress: bool = False) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if compress else content)
    return path


def assert_accounting(db: Database, summary: dict[str, Any]) -> None:
    """Nothing lost: for the run and for every load, rows read = rows loaded + rows rejected,
    and the raw tables hold exactly the rows the load log says."""
    assert summary["rows_read"] == summary["rows_loaded"] + summary["rows_rejected"]
    if not db.scalar("select to_regclass('raw.load_log') is not null"):
        return
    for load_id, kind, status, read, loaded, rejected, purged_at in db.query(
        "select load_id, file_kind, status, rows_read, rows_loaded, rows_rejected, purged_at "
        "from raw.load_log"
    ):
        table = "raw.daily_prices" if kind == "prices" else "raw.symbols_meta"
        stored = db.scalar(f"select count(*) from {table} where load_id = %s", (load_id,))
        stored_rejects = db.scalar("select count(*) from raw.load_rejects where load_id = %s", (load_id,))
        assert read == loaded + rejected, (load_id, read, loaded, rejected)
        assert stored_rejects == rejected, (load_id, stored_rejects, rejected)
        if status == "loaded" or (status == "superseded" and purged_at is None):
            assert stored == loaded, (load_id, status, stored, loaded)
        else:  # rejected files write nothing; purged superseded loads had their rows deleted
            assert stored == 0, (load_id, status, stored)


def rejects(db: Database) -> list[tuple[int, str, str]]:
    return db.query(
        "select line_number, reason_code, raw_line from raw.load_rejects order by load_id, line_number"
    )
