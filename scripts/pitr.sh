#!/usr/bin/env bash
# Base backups of the project cluster and point-in-time restore from them and the WAL archive.
#
#   scripts/pitr.sh backup             a base backup (pg_basebackup) into backups/base/<UTC time>/,
#                                      then the archive pruned: the newest
#                                      STOCK_ANALYTICS_BASE_BACKUPS_KEPT (default 2) backups kept,
#                                      and the WAL since the oldest of them
#   scripts/pitr.sh restore TIME|LSN   a new cluster under .local/pitr-<UTC time>/ recovered to that
#                                      moment (a timestamp with time zone, or an LSN such as
#                                      0/3000060), started on a free port; prints its `export PG...`
#                                      lines (ROLE=reader: that role's). The project cluster is only
#                                      asked to archive its latest WAL.
#   scripts/pitr.sh list               the base backups: name, finished at, end LSN
#   scripts/pitr.sh down               stop every restored cluster (their folders stay)
#
# Where: STOCK_ANALYTICS_BACKUP_DIR (default backups/) holds base/; the archive is db.sh's
# (STOCK_ANALYTICS_WAL_ARCHIVE). Exit codes: 0 done, 1 refused or failed (nothing half-made left).
set -euo pipefail
LOG_PREFIX=pitr
# shellcheck source=scripts/cluster_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster_lib.sh"

BACKUP_DIR="$(realpath -m "${STOCK_ANALYTICS_BACKUP_DIR:-${PROJECT_DIR}/backups}")/base"
KEEP="${STOCK_ANALYTICS_BASE_BACKUPS_KEPT:-2}"
ARCHIVE="$(wal_archive_dir)"

need_local_cluster() {
  is_local_mode || die "base backups and restores are of the project cluster; PGHOST/PGPORT point at
  your own server (use its backup tooling: docs/operations.md)."
  [ "${ARCHIVE}" != off ] || die "WAL archiving is off (STOCK_ANALYTICS_WAL_ARCHIVE=off): no point-in-time restore."
}

# The finished backups, oldest first: "<name> <finished epoch> <end LSN>".
backups() {
  local dir
  for dir in "${BACKUP_DIR}"/*/; do
    [ -f "${dir}backup_info" ] || continue
    printf '%s %s\n' "$(basename "${dir}")" "$(cat "${dir}backup_info")"
  done | sort
}

cmd_backup() {
  need_local_cluster
  cluster_running || die "the project cluster is not running: make db-up"
  local name partial end_lsn finished
  name="$(date -u +%Y%m%dT%H%M%SZ)"
  partial="${BACKUP_DIR}/${name}.partial"
  [ ! -e "${BACKUP_DIR}/${name}" ] || die "base backup ${name} exists already; wait a second and try again."
  mkdir -p "${BACKUP_DIR}"
  # What an interrupted backup left: never a backup (only a finished one is renamed).
  rm -rf "${BACKUP_DIR}"/*.partial "${BACKUP_DIR}"/*.partial.log
  say "Base backup of the project cluster into ${BACKUP_DIR}/${name} ..."
  # Over the socket as the replication role; -X stream puts the WAL the copy needs inside it, so
  # a backup restores even without the archive. Written under .partial, renamed when whole.
  if ! "${PG_BIN}/pg_basebackup" -D "${partial}" -h "${SOCKET_DIR}" -p "${LOCAL_PORT}" -U "${REPLICATION_ROLE}" \
    -X stream -c fast -l "stock_analytics ${name}" --progress 2>"${partial}.log"; then
    cat "${partial}.log" >&2
    rm -rf "${partial}" "${partial}.log"
    die "pg_basebackup failed (above); no backup was written."
  fi
  rm -f "${partial}.log"
  # The end of the copy: a restore can reach any moment after it.
  end_lsn="$(sed -n 's/.*"End-LSN": "\([0-9A-F]*\/[0-9A-F]*\)".*/\1/p' "${partial}/backup_manifest" | tail -n 1)"
  finished="$(date -u +%s)"
  echo "${finished} ${end_lsn}" >"${partial}/backup_info"
  mv "${partial}" "${BACKUP_DIR}/${name}"
  say "Base backup ${name} done: $(du -sh "${BACKUP_DIR}/${name}" | cut -f1), ends at LSN ${end_lsn}."
  prune
}

# Keep the newest KEEP base backups, and the archived WAL from the oldest kept one's start.
prune() {
  [[ "${KEEP}" =~ ^[1-9][0-9]*$ ]] || die "STOCK_ANALYTICS_BASE_BACKUPS_KEPT=${KEEP}: a number, 1 or more."
  local names oldest first_wal
  mapfile -t names < <(backups | cut -d' ' -f1)
  while [ "${#names[@]}" -gt "${KEEP}" ]; do
    rm -rf "${BACKUP_DIR:?}/${names[0]}"
    say "Removed base backup ${names[0]} (keeping the newest ${KEEP})."
    names=("${names[@]:1}")
  done
  oldest="${names[0]}"
  first_wal="$(sed -n 's/^START WAL LOCATION: .* (file \([0-9A-F]*\))$/\1/p' "${BACKUP_DIR}/${oldest}/backup_label")"
  [ -n "${first_wal}" ] || die "no START WAL LOCATION in ${BACKUP_DIR}/${oldest}/backup_label; the archive was not pruned."
  local before after
  before="$(du -sb "${ARCHIVE}" | cut -f1)"
  as_cluster_owner "${PG_BIN}/pg_archivecleanup" "${ARCHIVE}" "${first_wal}"
  after="$(du -sb "${ARCHIVE}" | cut -f1)"
  say "WAL archive ${ARCHIVE}: $((after / 1048576)) MiB from ${first_wal} on (pruned $(((before - after) / 1048576)) MiB)."
}

cmd_list() {
  local name finished end_lsn
  while read -r name finished end_lsn; do
    echo "${name} finished $(date -u -d "@${finished}" '+%Y-%m-%d %H:%M:%S+00') end_lsn ${end_lsn}"
  done < <(backups)
}

# Make sure the archive holds everything written until now: a commit (so a recovery to a time up
# to now finds a later record to stop at), then a switch to the next WAL file, waited for.
archive_up_to_now() {
  cluster_running || { say "The project cluster is not running: restoring from what the archive holds."; return; }
  local segment archived deadline=$((SECONDS + 60))
  superuser_value "select pg_current_xact_id()" >/dev/null
  segment="$(superuser_value "select pg_walfile_name(pg_switch_wal())")"
  while :; do
    archived="$(superuser_value "select coalesce(last_archived_wal, '') from pg_stat_archiver")"
    [[ "${archived}" > "${segment}" || "${archived}" = "${segment}" ]] && return
    [ "${SECONDS}" -lt "${deadline}" ] \
      || die "WAL file ${segment} was not archived within 60 s (see ${LOG_FILE}); nothing was restored."
    sleep 0.2
  done
}

cmd_restore() {
  local target="${1:-}" kind chosen="" name finished end_lsn oldest_text target_epoch target_lsn
  need_local_cluster
  [ -n "${target}" ] || die "usage: make -s pitr TIME='2026-12-03 15:00:00+00' (or LSN=0/3000060)"
  if [[ "${target}" =~ ^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$ ]]; then
    kind=lsn
    target_lsn="$(lsn_number "${target}")"
  else
    kind=time
    target_epoch="$(date -u -d "${target}" +%s 2>/dev/null)" \
      || die "TIME='${target}' is not a date and time (say '2026-12-03 15:00:00+00'); nothing was restored."
    [ "${target_epoch}" -le "$(date -u +%s)" ] \
      || die "TIME='${target}' is in the future; nothing was restored."
  fi
  [ -n "$(backups)" ] || die "there is no base backup yet (make backup): a restore starts from one and
  replays the archive; nothing was restored."
  while read -r name finished end_lsn; do
    if { [ "${kind}" = time ] && [ "${finished}" -le "${target_epoch}" ]; } \
      || { [ "${kind}" = lsn ] && [ "$(lsn_number "${end_lsn}")" -le "${target_lsn}" ]; }; then
      chosen="${name}"
    fi
  done < <(backups)
  if [ -z "${chosen}" ]; then
    read -r name finished end_lsn < <(backups)
    oldest_text="$(date -u -d "@${finished}" '+%Y-%m-%d %H:%M:%S+00') (LSN ${end_lsn})"
    die "the archive begins at ${oldest_text}, where the oldest base backup (${name}) ends:
  cannot restore to ${target}, before it; nothing was restored."
  fi
  archive_up_to_now
  restore_from "${chosen}" "${kind}" "${target}"
}

restore_from() {
  local backup="$1" kind="$2" target="$3" dir port conf
  dir="${STATE_DIR}/pitr-$(date -u +%Y%m%dT%H%M%SZ)"
  [ ! -e "${dir}" ] || die "${dir} exists already; wait a second and try again."
  port="$(free_port_from $((LOCAL_PORT + 200)))"
  say "Restoring base backup ${backup} into ${dir} (port ${port}), then the archive up to ${target} ..."
  mkdir -p "${dir}/run"
  cp -a "${BACKUP_DIR}/${backup}" "${dir}/pgdata"
  rm -f "${dir}/pgdata/backup_info"
  chown -R "$(cluster_owner)" "${dir}"
  chmod 700 "${dir}/pgdata"
  conf="${dir}/pgdata/postgresql.conf"
  set_conf_in "${conf}" port "${port}" || true
  set_conf_in "${conf}" unix_socket_directories "'${dir}/run'" || true
  # The restored cluster is a copy to read or to take from: it does not archive into the
  # project cluster's history.
  set_conf_in "${conf}" archive_mode off || true
  set_conf_in "${conf}" restore_command "'cp \"${ARCHIVE}/%f\" \"%p\"'" || true
  set_conf_in "${conf}" "recovery_target_${kind}" "'${target}'" || true
  set_conf_in "${conf}" recovery_target_action "'promote'" || true
  as_cluster_owner touch "${dir}/pgdata/recovery.signal"
  echo "${port}" >"${dir}/port"
  if ! pg_ctl_start "${dir}/pgdata" "${dir}/postgres.log" 3600 || ! wait_promoted "${dir}" "${port}"; then
    tail -n 15 "${dir}/postgres.log" >&2
    as_cluster_owner "${PG_BIN}/pg_ctl" -D "${dir}/pgdata" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "${dir}"
    die "the restore failed (the server's log above); its folder was removed."
  fi
  say "Restored to ${target}: localhost:${port} (${dir}); stop it with make pitr-down, delete the folder when done."
  env_on_port "${port}" "${ROLE:-}"
}

# Recovery ends with a promotion once the target is reached; false if the server stops first.
wait_promoted() {
  local dir="$1" port="$2"
  while cluster_running "${dir}/pgdata"; do
    [ "$(superuser_psql_at "${dir}/run" "${port}" -d postgres -At -c 'select pg_is_in_recovery()' 2>/dev/null)" = f ] \
      && return 0
    sleep 0.3
  done
  return 1
}

cmd_down() {
  local dir stopped=0
  for dir in "${STATE_DIR}"/pitr-*/; do
    [ -f "${dir}pgdata/PG_VERSION" ] || continue
    if cluster_running "${dir}pgdata"; then
      pg_ctl_stop "${dir}pgdata"
      say "Stopped the restored cluster in ${dir} (its folder stays)."
      stopped=$((stopped + 1))
    fi
  done
  [ "${stopped}" -gt 0 ] || say "No restored cluster is running."
}

case "${1:-}" in
  backup) cmd_backup ;;
  restore) cmd_restore "${2:-}" ;;
  list) cmd_list ;;
  down) cmd_down ;;
  *) echo "usage: $0 {backup|restore TIME|LSN|list|down}" >&2; exit 64 ;;
esac
