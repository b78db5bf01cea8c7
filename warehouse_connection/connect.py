"""A psycopg2 connection from the environment: what the loader, the report, the feed's
consumer and the scripts open."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg2
import psycopg2.extensions

from warehouse_connection.params import connection_params


def connect(
    application_name: str, env: Mapping[str, str] | None = None, **overrides: str | int
) -> psycopg2.extensions.connection:
    """A connection with the PG* variables of env (default: this process's), named in
    pg_stat_activity; overrides (connect_timeout, dbname, ...) win over the variables."""
    params = {**connection_params(env), "application_name": application_name, **overrides}
    return psycopg2.connect(**params)
