"""From the environment to a PostgreSQL connection, for every component.

`connection_params` is the one place the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE) become connection arguments; `db_script_env` is the one reader of the `export`
lines scripts/db.sh prints (the project cluster's variables, a role's, its superuser's).
"""

from warehouse_connection.db_script import DB_SCRIPT, db_script_env, parse_exports
from warehouse_connection.params import PG_VARS, connection_params

__all__ = ["DB_SCRIPT", "PG_VARS", "connection_params", "db_script_env", "parse_exports"]
