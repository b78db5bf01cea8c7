# What the scripts that run the project cluster share (sourced by db.sh, replica.sh, pitr.sh):
# where it lives, how to act as its owner, how to read and write its settings.
#
# Which cluster: STOCK_ANALYTICS_STATE_DIR (default .local: data, socket, log, passwords) and
# STOCK_ANALYTICS_PG_PORT (default 55432).

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
STATE_DIR="${STOCK_ANALYTICS_STATE_DIR:-${PROJECT_DIR}/.local}"
DATA_DIR="${STATE_DIR}/pgdata"
SOCKET_DIR="${STATE_DIR}/run"
LOG_FILE="${STATE_DIR}/postgres.log"
PASSWORD_FILE="${STATE_DIR}/pgpassword"
LOCAL_PORT="${STOCK_ANALYTICS_PG_PORT:-55432}"
LOCAL_USER="stock_analytics"
LOCAL_DB="stock_analytics"
# The role replicas and base backups connect as: REPLICATION, nothing else.
REPLICATION_ROLE="replicator"
LOG_PREFIX="${LOG_PREFIX:-db}"

say() { printf '[%s] %s\n' "${LOG_PREFIX}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${LOG_PREFIX}" "$*" >&2; exit 1; }

is_local_mode() {
  case "${PGHOST:-localhost}" in
    localhost | 127.0.0.1 | "${SOCKET_DIR}") ;;
    *) return 1 ;;
  esac
  [ "${PGPORT:-${LOCAL_PORT}}" = "${LOCAL_PORT}" ]
}

# The server refuses to run as root, so the cluster belongs to the `postgres` system user
# when we are root, and to the caller otherwise.
as_cluster_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cluster_owner() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }

# A generated password, kept in the state folder (git-ignored); $1: the file.
generated_password() {
  if [ ! -s "$1" ]; then
    mkdir -p "${STATE_DIR}"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$1")
  fi
  cat "$1"
}
local_password() { generated_password "${PASSWORD_FILE}"; }
role_password() { generated_password "${PASSWORD_FILE}-$1"; }

# $1: a data folder (default the project cluster's).
cluster_running() {
  local data="${1:-${DATA_DIR}}"
  [ -f "${data}/PG_VERSION" ] && as_cluster_owner "${PG_BIN}/pg_ctl" -D "${data}" status >/dev/null 2>&1
}

# $1: a port (default the project cluster's). A TCP connect that succeeds means something
# (PostgreSQL or not) listens there.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/${1:-${LOCAL_PORT}}") 2>/dev/null
}

# Start the cluster in the data folder $1, logging to $2, waiting at most $3 seconds for it.
pg_ctl_start() {
  touch "$2" && chown "$(cluster_owner)" "$2"
  as_cluster_owner "${PG_BIN}/pg_ctl" -D "$1" -l "$2" -w -t "$3" start >/dev/null
}

# Stop the cluster in the data folder $1 (fast: sessions ended, nothing lost), and wait for it.
pg_ctl_stop() { as_cluster_owner "${PG_BIN}/pg_ctl" -D "$1" -w -m fast stop >/dev/null; }

# The project cluster's `export PG...` lines (a component role's with $2) for the copy of it on
# port $1, a replica or a restored cluster: the roles and passwords are the same there.
env_on_port() {
  bash "${PROJECT_DIR}/scripts/db.sh" env ${2:+"$2"} | sed "s/^export PGPORT=.*/export PGPORT=$1/"
}

# A port nothing listens on, from $1 upwards (a replica's or a restored cluster's).
free_port_from() {
  local port="$1"
  while port_in_use "${port}"; do port=$((port + 1)); done
  echo "${port}"
}

# psql as the bootstrap superuser over a cluster's socket; $1 $2: socket folder and port
# (the project cluster's with superuser_psql).
superuser_psql_at() {
  local socket="$1" port="$2"
  shift 2
  as_cluster_owner psql -X -q -v ON_ERROR_STOP=1 -h "${socket}" -p "${port}" -U postgres "$@"
}
superuser_psql() { superuser_psql_at "${SOCKET_DIR}" "${LOCAL_PORT}" "$@"; }

# One value from the project cluster, as the superuser; $1: the query.
superuser_value() { superuser_psql -d postgres -At -c "$1"; }

# $1: a postgresql.conf; $2: a setting. Its last value written there (empty: none).
conf_value_in() { sed -n "s/^${2//./\\.} = //p" "$1" | tail -n 1; }

# Write `$2 = $3` into the postgresql.conf $1 (as the cluster owner, replacing an earlier line);
# false when it already says so.
set_conf_in() {
  [ "$(conf_value_in "$1" "$2")" = "$3" ] && return 1
  as_cluster_owner sed -i "/^${2//./\\.} = /d" "$1"
  printf '%s = %s\n' "$2" "$3" | as_cluster_owner tee -a "$1" >/dev/null
}

# An LSN 'X/Y' as one number, for comparing and subtracting.
lsn_number() {
  local hi="${1%/*}" lo="${1#*/}"
  echo $(((16#${hi} << 32) | 16#${lo}))
}

# The WAL archive: the folder STOCK_ANALYTICS_WAL_ARCHIVE names, or `off`. Unset: the choice
# the cluster was last brought up with (db.sh records it beside the data), so that a later
# `make db-up`, which every make target needing the server runs, neither turns archiving back
# on nor moves it; a cluster without a record that was set `off` stays off; else
# .local/wal-archive.
WAL_ARCHIVE_RECORD="${STATE_DIR}/wal-archive-choice"
wal_archive_dir() {
  local dir="${STOCK_ANALYTICS_WAL_ARCHIVE:-}"
  if [ -z "${dir}" ] && [ -s "${WAL_ARCHIVE_RECORD}" ]; then
    dir="$(cat "${WAL_ARCHIVE_RECORD}")"
  elif [ -z "${dir}" ] && [ -f "${DATA_DIR}/postgresql.conf" ] \
    && [ "$(conf_value_in "${DATA_DIR}/postgresql.conf" archive_mode)" = off ]; then
    dir=off
  fi
  dir="${dir:-${STATE_DIR}/wal-archive}"
  if [ "${dir}" = off ]; then echo off; else realpath -m "${dir}"; fi
}
