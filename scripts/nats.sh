#!/usr/bin/env bash
# The feed's second broker (STOCK_ANALYTICS_BROKER=nats; scripts/stream.sh): a NATS JetStream
# server owned by the project, like the database cluster.
#
#   scripts/nats.sh install install nats-server if missing (apt); the tests need only this
#   scripts/nats.sh up      install nats-server if missing (apt), start it, wait until it answers
#   scripts/nats.sh down    stop it (its stream store stays in .local/nats/store)
#   scripts/nats.sh status  say whether it runs and where
#   scripts/nats.sh env     print `export STOCK_ANALYTICS_NATS_URL=...` for eval in a shell
#
# Where: ${STOCK_ANALYTICS_STATE_DIR:-.local}/nats holds the store, the log, the pid file and the
# ports. The client port is STOCK_ANALYTICS_NATS_PORT, or else a free port chosen on the first
# `up` and remembered in nats/port (the monitoring port likewise, in nats/monitor_port).
# The server listens on 127.0.0.1 only and has no authentication: anything on this machine may
# publish and consume. A shared or remote deployment needs NATS users with per-subject permissions
# (publisher: publish bars.>; consumer: the $JS.API consumer subjects), which this script does not set up.
set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${STOCK_ANALYTICS_STATE_DIR:-${PROJECT_DIR}/.local}"
NATS_DIR="${STATE_DIR}/nats"
STORE_DIR="${NATS_DIR}/store"
LOG_FILE="${NATS_DIR}/nats-server.log"
PID_FILE="${NATS_DIR}/nats-server.pid"
PORT_FILE="${NATS_DIR}/port"
MONITOR_PORT_FILE="${NATS_DIR}/monitor_port"
NATS_SERVER="${NATS_SERVER:-/usr/sbin/nats-server}"
HOST=127.0.0.1
START_TIMEOUT_S=30

say() { printf '[stream] %s\n' "$*" >&2; }
die() { printf '[stream] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/broker_common.sh
. "${PROJECT_DIR}/scripts/broker_common.sh"

# $1: the file remembering the port, $2: the port asked for (may be empty).
chosen_port() {
  if [ -n "$2" ]; then
    echo "$2"
  elif [ -s "$1" ]; then
    cat "$1"
  else
    mkdir -p "${NATS_DIR}"
    free_port | tee "$1"
  fi
}
client_port() { chosen_port "${PORT_FILE}" "${STOCK_ANALYTICS_NATS_PORT:-}"; }
monitor_port() { chosen_port "${MONITOR_PORT_FILE}" "${STOCK_ANALYTICS_NATS_MONITOR_PORT:-}"; }

server_pid() {
  local pid
  [ -s "${PID_FILE}" ] || return 1
  pid="$(cat "${PID_FILE}")"
  # The pid must still be a nats-server (a stale file could name a reused pid).
  [ "$(cat "/proc/${pid}/comm" 2>/dev/null || true)" = "nats-server" ] || return 1
  echo "${pid}"
}

# The port the running server was started on (from its command line).
running_port() {
  tr '\0' ' ' <"/proc/$1/cmdline" | sed -n 's/.* -p \([0-9]*\) .*/\1/p'
}

healthy() {
  curl -fsS --max-time 2 "http://${HOST}:$1/healthz?js-enabled-only=true" >/dev/null 2>&1
}

install_server() {
  [ -x "${NATS_SERVER}" ] && return
  apt_install "${NATS_SERVER}" nats-server "install nats-server (2.9 or later) and set NATS_SERVER=/path/to/nats-server"
  [ -x "${NATS_SERVER}" ] || die "nats-server was installed but ${NATS_SERVER} is missing; set NATS_SERVER."
}

cmd_up() {
  install_server
  local port mport pid
  port="$(client_port)"
  mport="$(monitor_port)"
  if pid="$(server_pid)"; then
    local running
    running="$(running_port "${pid}")"
    if [ "${running}" = "${port}" ]; then
      say "JetStream server already running on nats://${HOST}:${port} (pid ${pid})."
      return
    fi
    say "The running server uses port ${running:-?}, the configuration says ${port}: restarting it ..."
    cmd_down
  fi
  port_in_use "${port}" && die "port ${port} is already in use by another program.
  Pick another: export STOCK_ANALYTICS_NATS_PORT=<port> (or delete ${PORT_FILE} to choose a free one)."
  port_in_use "${mport}" && die "monitoring port ${mport} is in use; delete ${MONITOR_PORT_FILE} or set STOCK_ANALYTICS_NATS_MONITOR_PORT."
  mkdir -p "${STORE_DIR}"
  say "Starting the JetStream server on nats://${HOST}:${port} (store ${STORE_DIR}) ..."
  # setsid + nohup: the server outlives this shell and make; it writes its own pid file.
  setsid nohup "${NATS_SERVER}" --jetstream --store_dir "${STORE_DIR}" -a "${HOST}" -p "${port}" \
    -m "${mport}" --server_name stock_analytics -P "${PID_FILE}" -l "${LOG_FILE}" \
    </dev/null >>"${LOG_FILE}" 2>&1 &
  local waited=0
  until healthy "${mport}"; do
    if ! kill -0 $! 2>/dev/null || [ "${waited}" -ge $((START_TIMEOUT_S * 10)) ]; then
      tail -n 20 "${LOG_FILE}" >&2 || true
      die "the JetStream server did not come up; see ${LOG_FILE}."
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  say "JetStream server ready on nats://${HOST}:${port}. Shell setup: eval \"\$(bash scripts/nats.sh env)\""
}

cmd_down() {
  local pid
  if ! pid="$(server_pid)"; then
    say "JetStream server is not running."
    rm -f "${PID_FILE}"
    return
  fi
  kill -TERM "${pid}"
  local waited=0
  while kill -0 "${pid}" 2>/dev/null; do
    [ "${waited}" -ge 300 ] && die "nats-server (pid ${pid}) did not stop within 30 s."
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "${PID_FILE}"
  say "JetStream server stopped; its store stays in ${STORE_DIR}."
}

cmd_status() {
  local pid port
  if pid="$(server_pid)"; then
    port="$(running_port "${pid}")"
    if healthy "$(monitor_port)"; then
      say "JetStream server running on nats://${HOST}:${port} (pid ${pid}, store ${STORE_DIR})."
    else
      say "nats-server (pid ${pid}) runs on port ${port} but JetStream does not answer yet; see ${LOG_FILE}."
      return 3
    fi
  else
    say "JetStream server is not running: make stream-up"
    return 3
  fi
}

case "${1:-}" in
  install) install_server ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) printf 'export STOCK_ANALYTICS_NATS_URL=nats://%s:%s\n' "${HOST}" "$(client_port)" ;;
  *) echo "usage: $0 {install|up|down|status|env}" >&2; exit 64 ;;
esac
