#!/usr/bin/env bash
# The project's database: a PostgreSQL 15 + TimescaleDB cluster owned by the project,
# or a server the user already has (chosen by the libpq variables).
#
#   scripts/db.sh up      install what is missing, start the cluster, create role, db, extension
#   scripts/db.sh down    stop the project cluster (its data stays in .local/pgdata)
#   scripts/db.sh status  say where the database is and whether it answers
#   scripts/db.sh env [ROLE]  print `export PG...=` lines for eval in a shell: the owner's, or
#                         those of a component role (loader, transformer, reader, streamer)
#   scripts/db.sh roles   create the component roles and their grants (also part of `up`)
#   scripts/db.sh superuser-env  the project cluster's superuser over its socket (exit 3 when
#                         the variables point at your own server, or the cluster is not running)
#
# Local mode (the default): nothing of PGHOST/PGPORT is set, or they point at the project
# cluster. External mode: PGHOST or PGPORT point elsewhere; nothing is installed or started,
# the server is checked for TimescaleDB instead.
#
# Which cluster: STOCK_ANALYTICS_STATE_DIR (default .local: data, socket, log, passwords) and
# STOCK_ANALYTICS_PG_PORT (default 55432). STOCK_ANALYTICS_TIMESCALEDB_LICENSE=apache|timescale
# sets the cluster's `timescaledb.license` (a community build acts as the Apache edition with
# 'apache'); unset, the cluster keeps what it has (a new one: the installed build's default).
# Port and license are written into postgresql.conf on every `up`, and a running cluster whose
# port or license differs is restarted, so an existing cluster follows. So is WAL archiving
# (STOCK_ANALYTICS_WAL_ARCHIVE, default .local/wal-archive; `off` for none; unset, what the
# cluster was last brought up with: a cluster made before archiving is restarted once to turn
# it on) and the WAL a replica's slot may hold
# (STOCK_ANALYTICS_MAX_SLOT_WAL_KEEP_SIZE, default 4GB). replica.sh and pitr.sh build on it.
set -euo pipefail

# shellcheck source=scripts/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"
LICENSE="${STOCK_ANALYTICS_TIMESCALEDB_LICENSE:-}"
# One login role per component (scripts/sql/grant_roles.sql says what each may do).
COMPONENT_ROLES=(loader transformer reader streamer)

is_component_role() {
  local role
  for role in "${COMPONENT_ROLES[@]}"; do [ "$1" = "${role}" ] && return 0; done
  return 1
}

# $1: empty for the owner (the admin role), or a component role.
print_env() {
  local role="${1:-}"
  if [ -n "${role}" ] && ! is_component_role "${role}"; then
    die "unknown role '${role}'; use one of: ${COMPONENT_ROLES[*]} (or none for the owner)."
  fi
  if is_local_mode; then
    cat <<EOF
export PGHOST=localhost
export PGPORT=${LOCAL_PORT}
export PGUSER=${LOCAL_USER}
export PGPASSWORD=$(local_password)
export PGDATABASE=${PGDATABASE:-${LOCAL_DB}}
EOF
  else
    for var in PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE; do
      [ -n "${!var:-}" ] && printf 'export %s=%q\n' "${var}" "${!var}"
    done
  fi
  if [ -n "${role}" ]; then  # the same server and database, as that role
    printf 'export PGUSER=%s\nexport PGPASSWORD=%s\n' "${role}" "$(role_password "${role}")"
  fi
  printf 'export DBT_PROFILES_DIR=%q\n' "${PROJECT_DIR}"
}

init_cluster() {
  say "Creating the project cluster in ${DATA_DIR} (port ${LOCAL_PORT}) ..."
  mkdir -p "${DATA_DIR}" "${SOCKET_DIR}"
  chown "$(cluster_owner)" "${DATA_DIR}" "${SOCKET_DIR}"
  chmod 700 "${DATA_DIR}"
  # The cluster owner must be able to reach the project folder.
  if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "${STATE_DIR}"; then
    die "the postgres user cannot enter ${STATE_DIR}; make the project path traversable (chmod o+x)."
  fi
  as_cluster_owner "${PG_BIN}/initdb" -D "${DATA_DIR}" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >"${STATE_DIR}/initdb.log" 2>&1 \
    || die "initdb failed; see ${STATE_DIR}/initdb.log."
  cat >>"${DATA_DIR}/postgresql.conf" <<EOF

# --- stock_analytics ---
port = ${LOCAL_PORT}
listen_addresses = 'localhost'
unix_socket_directories = '${SOCKET_DIR}'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
# Bulk loads: fewer forced checkpoints, more memory for sorts and index builds.
shared_buffers = 1GB
max_wal_size = 8GB
maintenance_work_mem = 512MB
work_mem = 64MB
EOF
}

start_cluster() {
  if port_in_use; then
    die "port ${LOCAL_PORT} is already in use by another server.
  Stop it, or pick another port for the project cluster: export STOCK_ANALYTICS_PG_PORT=55433"
  fi
  say "Starting the project cluster ..."
  pg_ctl_start "${DATA_DIR}" "${LOG_FILE}" 60 \
    || { tail -n 20 "${LOG_FILE}" >&2; die "the server did not start; see ${LOG_FILE}."; }
}

# The license asked for: a known one, and 'timescale' only where the community build is installed.
check_license_choice() {
  case "${LICENSE}" in
    "" | apache) ;;
    timescale)
      local lib
      lib="$("${PG_BIN}/pg_config" --pkglibdir 2>/dev/null || true)"
      compgen -G "${lib}/timescaledb-tsl-*.so" >/dev/null \
        || die "STOCK_ANALYTICS_TIMESCALEDB_LICENSE=timescale needs the TimescaleDB community edition,
  but ${lib:-this machine} has only the Apache build (no timescaledb-tsl-<version>.so).
  Build it: TIMESCALEDB_SOURCE=/path/timescaledb-X.Y.Z.tar.gz make db-up (see docs/editions.md)." ;;
    *) die "STOCK_ANALYTICS_TIMESCALEDB_LICENSE=${LICENSE}: use 'apache' or 'timescale'." ;;
  esac
}

set_conf() { set_conf_in "${DATA_DIR}/postgresql.conf" "$@"; }

# The settings the environment decides; prints what changed (nothing when nothing did).
configure_cluster() {
  set_conf port "${LOCAL_PORT}" && echo "port ${LOCAL_PORT}"
  if [ -n "${LICENSE}" ] && set_conf timescaledb.license "'${LICENSE}'"; then
    echo "timescaledb.license ${LICENSE}"
  fi
  configure_archiving
  # A replica stopped or gone keeps its slot; past this much WAL the slot is released rather
  # than the primary's disk filled (the replica must then be made again: replica.sh says so).
  set_conf max_slot_wal_keep_size "${STOCK_ANALYTICS_MAX_SLOT_WAL_KEEP_SIZE:-4GB}" \
    && echo "max_slot_wal_keep_size ${STOCK_ANALYTICS_MAX_SLOT_WAL_KEEP_SIZE:-4GB}"
  return 0
}

# WAL archiving into wal_archive_dir (docs/operations.md): what point-in-time restore replays.
configure_archiving() {
  local archive
  archive="$(wal_archive_dir)"
  printf '%s\n' "${archive}" >"${WAL_ARCHIVE_RECORD}"
  if [ "${archive}" = off ]; then
    set_conf archive_mode off && echo "archive_mode off"
    return 0
  fi
  mkdir -p "${archive}"
  chown "$(cluster_owner)" "${archive}" 2>/dev/null \
    || as_cluster_owner test -w "${archive}" \
    || die "the cluster's owner ($(cluster_owner)) cannot write the WAL archive ${archive}."
  set_conf archive_mode on && echo "archive_mode on"
  set_conf archive_command "'\"${PROJECT_DIR}/scripts/archive_wal.sh\" \"%p\" \"%f\" \"${archive}\"'" \
    && echo "archive_command into ${archive}"
  # A quiet minute's changes still reach the archive within a minute (the most a lost disk loses).
  set_conf archive_timeout 60 && echo "archive_timeout 60"
  return 0
}

# Why the running server must restart to follow postgresql.conf (empty: it need not).
restart_reason() {
  local running_port running_license running_archive_mode
  running_port="$(sed -n 4p "${DATA_DIR}/postmaster.pid" 2>/dev/null || true)"
  if [ "${running_port}" != "${LOCAL_PORT}" ]; then
    echo "it runs on port ${running_port:-?}, the configuration says ${LOCAL_PORT}"
    return
  fi
  running_archive_mode="$(superuser_value 'show archive_mode' 2>/dev/null || true)"
  if [ "${running_archive_mode}" != "$(conf_value_in "${DATA_DIR}/postgresql.conf" archive_mode)" ]; then
    echo "WAL archiving is '${running_archive_mode:-?}', the configuration says '$(conf_value_in "${DATA_DIR}/postgresql.conf" archive_mode)' (a restart is how PostgreSQL turns it on; no data is lost)"
    return
  fi
  [ -n "${LICENSE}" ] || return 0
  running_license="$(superuser_psql -d postgres -At -c 'show timescaledb.license' 2>/dev/null || true)"
  if [ "${running_license}" != "${LICENSE}" ]; then
    echo "its TimescaleDB license is '${running_license:-?}', the configuration says '${LICENSE}'"
  fi
}

restart_cluster() {
  say "Restarting the cluster in ${DATA_DIR}: $1 ..."
  pg_ctl_stop "${DATA_DIR}" \
    || die "could not stop the cluster in ${DATA_DIR}; see ${LOG_FILE}."
  start_cluster
}

bootstrap_database() {
  local password
  password="$(local_password)"
  superuser_psql -d postgres -v role="${LOCAL_USER}" -v pw="${password}" -v db="${LOCAL_DB}" <<'SQL'
select format('create role %I login createdb', :'role')
 where not exists (select from pg_roles where rolname = :'role') \gexec
alter role :"role" password :'pw';
select format('create database %I owner %I', :'db', :'role')
 where not exists (select from pg_database where datname = :'db') \gexec
SQL
  superuser_psql -d "${LOCAL_DB}" -c "set client_min_messages = warning" -c "create extension if not exists timescaledb"
  role_psql=(superuser_psql -d postgres)
  setup_roles "${LOCAL_USER}"
  # Replicas and base backups (replica.sh, pitr.sh): replication and nothing else.
  superuser_psql -d postgres -v role="${REPLICATION_ROLE}" -v pw="$(role_password "${REPLICATION_ROLE}")" <<'SQL'
select format('create role %I login replication', :'role')
 where not exists (select from pg_roles where rolname = :'role') \gexec
alter role :"role" password :'pw';
SQL
  # As the superuser here: it alone can re-own the hypertables of a database built before the
  # roles existed (the owner, on a server of your own, makes dbt rebuild them instead).
  superuser_psql -d "${LOCAL_DB}" -f "${PROJECT_DIR}/scripts/sql/grant_roles.sql"
}

# Create (or set the passwords of) the component roles; $1: the owner role. Runs through the
# array role_psql: a psql command line connected as a role with CREATEROLE.
setup_roles() {
  local args=(-v owner="$1") role
  for role in "${COMPONENT_ROLES[@]}"; do args+=(-v "${role}_pw=$(role_password "${role}")"); done
  "${role_psql[@]}" "${args[@]}" -f "${PROJECT_DIR}/scripts/sql/create_roles.sql" >/dev/null
}

# Your own server: the roles need CREATEROLE once; the grants need the database owner.
external_roles() {
  local can
  can="$(psql -X -At -c "select rolsuper or rolcreaterole from pg_roles where rolname = current_user")" \
    || die "cannot reach your server to set up the roles."
  if [ "${can}" != "t" ]; then
    die "creating the component roles (${COMPONENT_ROLES[*]}) needs CREATEROLE, which ${PGUSER:-your role} lacks.
  Ask your DBA to run scripts/sql/create_roles.sql once (see the README), then re-run."
  fi
  role_psql=(psql -X -q -v ON_ERROR_STOP=1 -d "${PGDATABASE:-postgres}")
  setup_roles "$(psql -X -At -c 'select current_user')"
  psql -X -q -v ON_ERROR_STOP=1 -f "${PROJECT_DIR}/scripts/sql/grant_roles.sql" \
    || die "granting the roles failed: run it as the owner of database ${PGDATABASE:-}."
  say "Roles ${COMPONENT_ROLES[*]} ready; passwords in ${STATE_DIR}/pgpassword-<role>."
}

check_external() {
  local version
  version="$(psql -X -At -c "create extension if not exists timescaledb; select extversion from pg_extension where extname = 'timescaledb'" 2>&1 | tail -n 1)" \
    || die "cannot use the server at PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGDATABASE=${PGDATABASE:-}:
  ${version}
  Check the PG* variables, or unset PGHOST and PGPORT to use the project's own cluster."
  say "Using your server ${PGHOST:-}:${PGPORT:-5432}/${PGDATABASE:-} with TimescaleDB ${version}."
}

cmd_up() {
  if ! is_local_mode; then check_external; external_roles; return; fi
  case "${LICENSE}" in "" | apache | timescale) ;; *) check_license_choice ;; esac
  bash "${PROJECT_DIR}/scripts/install_timescaledb.sh"
  bash "${PROJECT_DIR}/scripts/install_price_series.sh"
  check_license_choice
  [ -f "${DATA_DIR}/PG_VERSION" ] || init_cluster
  local changed reason
  changed="$(configure_cluster)"
  [ -z "${changed}" ] || say "postgresql.conf: ${changed//$'\n'/, }"
  if ! cluster_running; then
    start_cluster
  else
    reason="$(restart_reason)"
    if [ -n "${reason}" ]; then
      restart_cluster "${reason}"
    elif [ -n "${changed}" ]; then
      superuser_value 'select pg_reload_conf()' >/dev/null
    fi
  fi
  bootstrap_database
  say "Database ready: localhost:${LOCAL_PORT}/${LOCAL_DB} (user ${LOCAL_USER}). Shell setup: eval \"\$(make -s env)\""
}

cmd_down() {
  if ! is_local_mode; then say "PGHOST/PGPORT point at your own server; nothing to stop."; return; fi
  if cluster_running; then
    pg_ctl_stop "${DATA_DIR}"
    say "Project cluster stopped; its data stays in ${DATA_DIR}."
  else
    say "Project cluster is not running."
  fi
}

cmd_status() {
  if is_local_mode; then
    if cluster_running; then say "Project cluster running on localhost:${LOCAL_PORT} (${DATA_DIR})."
    elif [ -f "${DATA_DIR}/PG_VERSION" ]; then say "Project cluster exists but is stopped: make db-up"; return 3
    else say "No project cluster yet: make db-up"; return 3
    fi
  else
    psql -X -At -c 'select 1' >/dev/null 2>&1 || { say "Your server at ${PGHOST:-}:${PGPORT:-} does not answer."; return 3; }
    say "Using your server at ${PGHOST:-}:${PGPORT:-}."
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env "${2:-}" ;;
  superuser-env)
    if is_local_mode && [ -S "${SOCKET_DIR}/.s.PGSQL.${LOCAL_PORT}" ]; then
      printf 'export PGHOST=%q\nexport PGPORT=%s\nexport PGUSER=postgres\n' "${SOCKET_DIR}" "${LOCAL_PORT}"
    else
      exit 3
    fi ;;
  roles) if is_local_mode; then cmd_up; else external_roles; fi ;;
  *) echo "usage: $0 {up|down|status|env [ROLE]|roles|superuser-env}" >&2; exit 64 ;;
esac
