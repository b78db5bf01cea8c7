#!/usr/bin/env bash
# Hot standbys of the project cluster, by PostgreSQL's streaming replication.
#
#   scripts/replica.sh up [N]      make replica N (default 1) with pg_basebackup and a replication
#                                  slot, or start it again; it streams from the project cluster
#   scripts/replica.sh down [N]    stop replica N (its data and slot stay: up catches it up)
#   scripts/replica.sh remove [N]  stop it, drop its slot, delete its folder
#   scripts/replica.sh status      one line per replica:
#       replica <n> port <port> state <state> lag_bytes <n> lag_s <seconds> slot_wal_bytes <n>
#   scripts/replica.sh env N [ROLE]  `export PG...=` lines for replica N (as db.sh env ROLE)
#   scripts/replica.sh servers     host:port of every running replica, comma-separated (for
#                                  the API's API_READ_SERVERS)
#
# Replica N lives in .local/replica-N/ (pgdata, run, postgres.log, port) on a free port of its
# own. It refuses every write; roles and passwords are the primary's (a physical copy).
# lag_s is staleness: how long ago the primary wrote the oldest change the replica has not
# replayed (0 when it has replayed everything the primary wrote); docs/operations.md.
set -euo pipefail
LOG_PREFIX=replica
# shellcheck source=scripts/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

FIRST_REPLICA_PORT=$((LOCAL_PORT + 100))

replica_dir() { echo "${STATE_DIR}/replica-$1"; }
slot_name() { echo "replica_$1"; }
replica_port() { cat "$(replica_dir "$1")/port"; }

check_number() {
  [[ "$1" =~ ^[1-9][0-9]{0,2}$ ]] || die "a replica is numbered 1, 2, ...: got '$1'."
}

need_primary() {
  is_local_mode || die "replicas are of the project cluster; PGHOST/PGPORT point at your own server
  (use its replication: docs/operations.md)."
  cluster_running || die "the project cluster is not running: make db-up"
}

# The replica's own settings, over the copy of the primary's postgresql.conf.
configure_replica() {
  local conf="$1/pgdata/postgresql.conf" port="$2"
  set_conf_in "${conf}" port "${port}" || true
  set_conf_in "${conf}" unix_socket_directories "'$1/run'" || true
  # A standby does not archive; the primary's archive is the one history.
  set_conf_in "${conf}" archive_mode off || true
  set_conf_in "${conf}" hot_standby on || true
  # Tell the primary which rows the replica's queries still read, so vacuum there does not
  # remove them and replay need not cancel a reader (the cost: some bloat on the primary
  # while a long query runs on the replica).
  set_conf_in "${conf}" hot_standby_feedback on || true
  # Report the replay position every second, so the primary's lag figures are at most 1 s old.
  set_conf_in "${conf}" wal_receiver_status_interval "'1s'" || true
}

clone_replica() {
  local n="$1" dir port
  dir="$(replica_dir "$n")"
  port="$(free_port_from $((FIRST_REPLICA_PORT + n - 1)))"
  say "Making replica ${n} in ${dir} (port ${port}): pg_basebackup of the project cluster ..."
  mkdir -p "${dir}/run"
  chown "$(cluster_owner)" "${dir}" "${dir}/run"
  # A slot of a replica removed by hand would make pg_basebackup -C fail: drop a stale one.
  superuser_value "select pg_drop_replication_slot('$(slot_name "$n")') from pg_replication_slots
                    where slot_name = '$(slot_name "$n")' and not active" >/dev/null
  # Over the socket as the replication role; -R writes standby.signal and primary_conninfo,
  # -C -S the slot that keeps the WAL the replica has not received yet.
  if ! as_cluster_owner "${PG_BIN}/pg_basebackup" -D "${dir}/pgdata" -h "${SOCKET_DIR}" -p "${LOCAL_PORT}" \
    -U "${REPLICATION_ROLE}" -X stream -C -S "$(slot_name "$n")" -R -c fast \
    -d "application_name=$(slot_name "$n")" >"${dir}/basebackup.log" 2>&1; then
    cat "${dir}/basebackup.log" >&2
    rm -rf "${dir}"
    die "pg_basebackup failed (above); nothing is left of replica ${n}."
  fi
  echo "${port}" >"${dir}/port"
  configure_replica "${dir}" "${port}"
}

# Why replica N cannot resume streaming (empty: it can): its slot is gone or released its WAL.
unresumable() {
  local status
  status="$(superuser_value "select coalesce(wal_status, 'unreserved') from pg_replication_slots
                              where slot_name = '$(slot_name "$1")'")"
  case "${status}" in
    "") echo "its replication slot $(slot_name "$1") no longer exists" ;;
    lost) echo "its slot released the WAL it needed (it was down past max_slot_wal_keep_size)" ;;
  esac
}

start_replica() {
  local n="$1" dir port
  dir="$(replica_dir "$n")"
  port="$(replica_port "$n")"
  if port_in_use "${port}"; then
    port="$(free_port_from $((FIRST_REPLICA_PORT + n - 1)))"
    echo "${port}" >"${dir}/port"
    set_conf_in "${dir}/pgdata/postgresql.conf" port "${port}" || true
  fi
  pg_ctl_start "${dir}/pgdata" "${dir}/postgres.log" 120 \
    || { tail -n 20 "${dir}/postgres.log" >&2; die "replica ${n} did not start; see ${dir}/postgres.log."; }
  say "Replica ${n} running on localhost:${port}; make -s replica-status shows its lag."
}

cmd_up() {
  local n="$1" dir reason
  check_number "$n"
  need_primary
  dir="$(replica_dir "$n")"
  if [ -f "${dir}/pgdata/PG_VERSION" ]; then
    if cluster_running "${dir}/pgdata"; then
      say "Replica ${n} already runs on localhost:$(replica_port "$n")."
      return
    fi
    reason="$(unresumable "$n")"
    if [ -n "${reason}" ]; then
      say "Replica ${n} cannot catch up: ${reason}. Making it again."
      rm -rf "${dir}"
    fi
  fi
  [ -f "${dir}/pgdata/PG_VERSION" ] || clone_replica "$n"
  start_replica "$n"
}

cmd_down() {
  local n="$1" dir
  check_number "$n"
  dir="$(replica_dir "$n")"
  if cluster_running "${dir}/pgdata"; then
    pg_ctl_stop "${dir}/pgdata"
    say "Replica ${n} stopped; its data and slot stay (the slot holds at most max_slot_wal_keep_size of WAL)."
  else
    say "Replica ${n} is not running."
  fi
}

cmd_remove() {
  local n="$1" dir
  check_number "$n"
  dir="$(replica_dir "$n")"
  cluster_running "${dir}/pgdata" && pg_ctl_stop "${dir}/pgdata"
  if cluster_running; then
    superuser_value "select pg_drop_replication_slot(slot_name) from pg_replication_slots
                      where slot_name = '$(slot_name "$n")'" >/dev/null
  fi
  rm -rf "${dir}"
  say "Replica ${n} removed (folder and slot)."
}

replica_numbers() {
  local dir
  for dir in "${STATE_DIR}"/replica-*; do
    [ -f "${dir}/port" ] && echo "${dir##*-}"
  done | sort -n
}

cmd_status() {
  local n state_rows
  need_primary
  # From the primary, one row per slot of ours: its WAL position now, and what the walsender
  # last heard from the replica: PostgreSQL's replay_lag as of the replica's last report (at
  # most a second old), plus the time since that report.
  state_rows="$(superuser_psql -d postgres -At -F '|' <<'SQL'
select s.slot_name,
       coalesce(r.state, 'disconnected'),
       pg_current_wal_lsn(),
       coalesce(r.replay_lsn, s.restart_lsn),
       case when r.replay_lsn is null or r.reply_time is null then '-'  -- no report from it yet
            when r.replay_lsn >= pg_current_wal_lsn() then '0.000'
            else to_char(extract(epoch from coalesce(r.replay_lag, interval '0') + (clock_timestamp() - r.reply_time)),
                         'FM999999990.000') end,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint,
       coalesce(s.wal_status, '-')
  from pg_replication_slots s
  left join pg_stat_replication r on r.pid = s.active_pid
 where s.slot_name like 'replica\_%'
SQL
)"
  [ -n "$(replica_numbers)" ] || say "No replicas: make replica-up"
  for n in $(replica_numbers); do
    local row state written replayed lag_bytes lag_s slot_bytes wal_status dir
    dir="$(replica_dir "$n")"
    row="$(awk -F '|' -v slot="$(slot_name "$n")" '$1 == slot' <<<"${state_rows}")"
    if [ -z "${row}" ]; then
      state=no-slot lag_bytes=- lag_s=- slot_bytes=0 wal_status=-
    else
      IFS='|' read -r _ state written replayed lag_s slot_bytes wal_status <<<"${row}"
      if cluster_running "${dir}/pgdata"; then
        # The replica's own replay position, read after the primary's: when it has reached what
        # the primary had written, it is caught up, whatever its last report said.
        replayed="$(superuser_psql_at "${dir}/run" "$(replica_port "$n")" -d postgres -At \
          -c 'select pg_last_wal_replay_lsn()' 2>/dev/null || echo "${replayed}")"
        [ "$(lsn_number "${replayed:-0/0}")" -ge "$(lsn_number "${written}")" ] && lag_s=0.000
      else
        state=down lag_s=-
      fi
      lag_bytes=$(($(lsn_number "${written}") - $(lsn_number "${replayed:-${written}}")))
      [ "${lag_bytes}" -ge 0 ] || lag_bytes=0
      [ "${wal_status}" = lost ] && state=lost
    fi
    echo "replica ${n} port $(replica_port "$n") state ${state} lag_bytes ${lag_bytes} lag_s ${lag_s} slot_wal_bytes ${slot_bytes}"
  done
}

cmd_env() {
  local n="$1" role="${2:-}"
  check_number "$n"
  [ -f "$(replica_dir "$n")/port" ] || die "there is no replica ${n}: make replica-up REPLICA=${n}"
  env_on_port "$(replica_port "$n")" "${role}"
}

cmd_servers() {
  local n servers=()
  for n in $(replica_numbers); do
    cluster_running "$(replica_dir "$n")/pgdata" && servers+=("localhost:$(replica_port "$n")")
  done
  (IFS=,; echo "${servers[*]}")
}

case "${1:-}" in
  up) cmd_up "${2:-1}" ;;
  down) cmd_down "${2:-1}" ;;
  remove) cmd_remove "${2:-1}" ;;
  status) cmd_status ;;
  env) cmd_env "${2:-1}" "${3:-}" ;;
  servers) cmd_servers ;;
  *) echo "usage: $0 {up [N]|down [N]|remove [N]|status|env N [ROLE]|servers}" >&2; exit 64 ;;
esac
