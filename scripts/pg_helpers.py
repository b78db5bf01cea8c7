"""Small helpers the database owner's scripts (backup.py, maintenance.py) share."""

from __future__ import annotations

import psycopg2.extensions
from psycopg2 import sql


def fetch(conn: psycopg2.extensions.connection, query: str | sql.Composable, params: object = None) -> list:
    """The rows of one statement (none for a statement that returns none)."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def human_bytes(n: float | None) -> str:
    """A size for people: 812 B, 12.4 MB, 1.2 TB; '-' for none."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
