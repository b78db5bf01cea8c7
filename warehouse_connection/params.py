"""The libpq variables as connection arguments."""

from __future__ import annotations

import os
from collections.abc import Mapping

# libpq variable -> the keyword psycopg2.connect and psycopg.connect both take for it.
PG_VARS = {
    "PGHOST": "host",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGDATABASE": "dbname",
}


def connection_params(env: Mapping[str, str] | None = None, **overrides: str) -> dict[str, str]:
    """Connection arguments from the PG* variables of env (default: this process's environment).

    Unset or empty variables are left out, so libpq applies its own defaults for them; overrides
    (say dbname=...) win over the variables. Explicit arguments, rather than libpq reading the
    environment itself, let a caller connect with an environment that is not its own.
    """
    env = os.environ if env is None else env
    params = {key: env[name] for name, key in PG_VARS.items() if env.get(name)}
    return params | overrides
