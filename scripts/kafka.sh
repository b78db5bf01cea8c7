#!/usr/bin/env bash
# The feed's Kafka cluster, owned by the project like the database cluster: Apache Kafka from
# Maven Central, KRaft mode (each node is broker and controller in one JVM; no ZooKeeper).
#
#   scripts/kafka.sh install  Java (Debian's openjdk-17-jre-headless) and Maven if missing, and
#                             the pinned release's jars (stream/kafka/pom.xml) into the cache
#   scripts/kafka.sh up       install what is missing, format new nodes, start every node that is
#                             down (the running ones are left alone), wait until each is serving
#   scripts/kafka.sh down     stop every node (their logs and topics stay)
#   scripts/kafka.sh status   one line per node: `node <id> pid <pid> port <port> up|down`
#                             (exit 3 when a node is down)
#   scripts/kafka.sh env      print `export STOCK_ANALYTICS_KAFKA_BOOTSTRAP=...` for eval
#
# How many nodes: STREAM_BROKERS (default 1; 3 makes a replicated cluster). The number is fixed
# when the cluster is first formatted (its controller quorum lists every node); asking for another
# number later is refused with what to do.
#
# Where: .local/kafka-lib caches the jars. ${STOCK_ANALYTICS_STATE_DIR:-.local}/kafka holds the
# cluster id and, per node, node-<id>/ with its data, configuration, log, pid and ports (free loopback ports chosen
# on the first `up` and remembered). The nodes listen on 127.0.0.1 only, without authentication:
# anything on this machine may produce and consume. A shared deployment needs SASL/TLS listeners
# and ACLs (producer: write on `bars`; consumer: read on `bars` and group `warehouse`).
set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${STOCK_ANALYTICS_STATE_DIR:-${PROJECT_DIR}/.local}"
KAFKA_DIR="${STATE_DIR}/kafka"
# The jars: one cache per checkout, whatever the state folder (test clusters share it).
LIB_DIR="${PROJECT_DIR}/.local/kafka-lib"
POM="${PROJECT_DIR}/stream/kafka/pom.xml"
LOG_CONFIG="${PROJECT_DIR}/stream/kafka/log4j2.xml"
CLUSTER_ID_FILE="${KAFKA_DIR}/cluster_id"
NODES_FILE="${KAFKA_DIR}/nodes"
HOST=127.0.0.1
START_TIMEOUT_S=90
# Three nodes beside PostgreSQL on a 2-core, 24 GB machine: a fixed 512 MB heap each (Kafka's
# default is 1 GB; the page cache, not the heap, holds the log segments).
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
JVM_OPTS=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=${LOG_CONFIG}")
# What a node logs once it serves clients (KafkaRaftServer, Kafka 4.x).
STARTED_LINE="Kafka Server started"

say() { printf '[kafka] %s\n' "$*" >&2; }
die() { printf '[kafka] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/broker_common.sh
. "${PROJECT_DIR}/scripts/broker_common.sh"

node_dir() { echo "${KAFKA_DIR}/node-$1"; }

# The node's port of one kind (port, controller_port): chosen once, then remembered.
node_port() {
  local file
  file="$(node_dir "$1")/$2"
  if [ ! -s "${file}" ]; then
    mkdir -p "$(dirname "${file}")"
    free_port >"${file}"
  fi
  cat "${file}"
}

node_pid() {
  local file pid
  file="$(node_dir "$1")/kafka.pid"
  [ -s "${file}" ] || return 1
  pid="$(cat "${file}")"
  # The pid must still be this node's JVM (a stale file could name a reused pid).
  tr '\0' ' ' 2>/dev/null <"/proc/${pid}/cmdline" | grep -q -- "$(node_dir "$1")/server.properties" || return 1
  echo "${pid}"
}

# The cluster's size: fixed at its first format; STREAM_BROKERS may only repeat it.
node_count() {
  local asked="${STREAM_BROKERS:-}"
  if [ -s "${NODES_FILE}" ]; then
    local formatted
    formatted="$(cat "${NODES_FILE}")"
    if [ -n "${asked}" ] && [ "${asked}" != "${formatted}" ]; then
      die "the Kafka cluster in ${KAFKA_DIR} has ${formatted} node(s), STREAM_BROKERS asks for ${asked}.
  A KRaft cluster's controller quorum is fixed when it is formatted. To start over with ${asked} node(s):
  scripts/kafka.sh down && rm -rf ${KAFKA_DIR}/node-* ${NODES_FILE} ${CLUSTER_ID_FILE}   (its topics are lost;
  the warehouse keeps every bar it took), or run the other cluster in another STOCK_ANALYTICS_STATE_DIR."
    fi
    echo "${formatted}"
  else
    echo "${asked:-1}"
  fi
}

java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1; }

cmd_install() {
  command -v java >/dev/null || apt_install java openjdk-17-jre-headless
  local major
  major="$(java_major)"
  [ "${major:-0}" -ge 17 ] || die "Kafka 4 needs Java 17 or later; \`java -version\` says ${major:-nothing}. Put a Java 17 first on PATH."
  local version
  version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "${POM}")"
  if [ -s "${LIB_DIR}/.version" ] && [ "$(cat "${LIB_DIR}/.version")" = "${version}" ]; then
    return
  fi
  command -v mvn >/dev/null || apt_install mvn maven
  # One fetch at a time (two test passes may start together); the second finds the cache filled.
  mkdir -p "$(dirname "${LIB_DIR}")"
  exec 9>"${LIB_DIR}.lock"
  flock 9
  if [ -s "${LIB_DIR}/.version" ] && [ "$(cat "${LIB_DIR}/.version")" = "${version}" ]; then
    return
  fi
  say "Fetching Apache Kafka ${version} from Maven Central into ${LIB_DIR} ..."
  rm -rf "${LIB_DIR}.new"
  mvn -q -B -f "${POM}" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="${LIB_DIR}.new" >"${LIB_DIR}.mvn.log" 2>&1 \
    || { tail -n 30 "${LIB_DIR}.mvn.log" >&2; die "Maven could not fetch Kafka ${version}; see above."; }
  echo "${version}" >"${LIB_DIR}.new/.version"
  # The cache changes as a whole: a node never starts on a half-copied set of jars.
  rm -rf "${LIB_DIR}"
  mv "${LIB_DIR}.new" "${LIB_DIR}"
  rm -f "${LIB_DIR}.mvn.log"
}

kafka_java() { java ${HEAP_OPTS} "${JVM_OPTS[@]}" -cp "${LIB_DIR}/*" "$@"; }

# $1: node id, $2: node count. Written on every `up`, so a change here reaches every node.
write_config() {
  local id="$1" count="$2" dir voters="" other replication isr
  dir="$(node_dir "${id}")"
  for other in $(seq 1 "${count}"); do
    voters="${voters:+${voters},}${other}@${HOST}:$(node_port "${other}" controller_port)"
  done
  # One node: nothing to replicate to. A cluster: every partition on 3 nodes, a write needs 2.
  if [ "${count}" -ge 3 ]; then replication=3; isr=2; else replication="${count}"; isr=1; fi
  cat >"${dir}/server.properties" <<EOF
# Written by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=${id}
controller.quorum.voters=${voters}
listeners=PLAINTEXT://${HOST}:$(node_port "${id}" port),CONTROLLER://${HOST}:$(node_port "${id}" controller_port)
advertised.listeners=PLAINTEXT://${HOST}:$(node_port "${id}" port)
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${dir}/data
# The feed's topic is created by the clients with its own settings (stream/ docs); nothing else
# appears by accident.
auto.create.topics.enable=false
num.partitions=12
default.replication.factor=${replication}
min.insync.replicas=${isr}
offsets.topic.replication.factor=${replication}
transaction.state.log.replication.factor=${replication}
transaction.state.log.min.isr=${isr}
share.coordinator.state.topic.replication.factor=${replication}
share.coordinator.state.topic.min.isr=${isr}
log.retention.hours=168
# A consumer group forms at once (tests and scripts start consumers one after the other).
group.initial.rebalance.delay.ms=0
EOF
}

cluster_id() {
  if [ ! -s "${CLUSTER_ID_FILE}" ]; then
    mkdir -p "${KAFKA_DIR}"
    kafka_java kafka.tools.StorageTool random-uuid >"${CLUSTER_ID_FILE}"
  fi
  cat "${CLUSTER_ID_FILE}"
}

start_node() {
  local id="$1" dir
  dir="$(node_dir "${id}")"
  if [ ! -s "${dir}/data/meta.properties" ]; then
    say "Formatting node ${id} (${dir}/data) ..."
    kafka_java kafka.tools.StorageTool format --cluster-id "$(cluster_id)" \
      --config "${dir}/server.properties" --ignore-formatted >>"${dir}/kafka.log" 2>&1 \
      || { tail -n 20 "${dir}/kafka.log" >&2; die "formatting node ${id} failed; see ${dir}/kafka.log."; }
  fi
  local port controller_port
  port="$(node_port "${id}" port)"
  controller_port="$(node_port "${id}" controller_port)"
  port_in_use "${port}" && die "port ${port} (node ${id}) is in use by another program; delete ${dir}/port to choose another."
  port_in_use "${controller_port}" && die "port ${controller_port} (node ${id}'s controller) is in use; delete ${dir}/controller_port and the cluster's nodes (their quorum lists it)."
  # Where this start's log lines begin: `up` waits for the started line after it.
  stat -c %s "${dir}/kafka.log" 2>/dev/null >"${dir}/log_offset" || echo 0 >"${dir}/log_offset"
  # setsid + nohup: the node outlives this shell and make.
  setsid nohup java ${HEAP_OPTS} "${JVM_OPTS[@]}" "-Xlog:gc:file=${dir}/gc.log:time:filecount=2,filesize=10M" \
    -cp "${LIB_DIR}/*" kafka.Kafka "${dir}/server.properties" </dev/null >>"${dir}/kafka.log" 2>&1 &
  echo $! >"${dir}/kafka.pid"
  say "Starting node ${id} on ${HOST}:${port} (pid $!) ..."
}

started() {
  local dir offset
  dir="$(node_dir "$1")"
  offset="$(cat "${dir}/log_offset" 2>/dev/null || echo 0)"
  tail -c +"$((offset + 1))" "${dir}/kafka.log" 2>/dev/null | grep -q "${STARTED_LINE}"
}

cmd_up() {
  cmd_install
  local count id
  count="$(node_count)"
  mkdir -p "${KAFKA_DIR}"
  local starting=()
  for id in $(seq 1 "${count}"); do
    mkdir -p "$(node_dir "${id}")"
    write_config "${id}" "${count}"
  done
  echo "${count}" >"${NODES_FILE}"
  for id in $(seq 1 "${count}"); do
    if node_pid "${id}" >/dev/null; then
      say "Node ${id} already running on ${HOST}:$(node_port "${id}" port) (pid $(node_pid "${id}"))."
      continue
    fi
    start_node "${id}"
    starting+=("${id}")
  done
  # Wait for all at once: a node of a cluster serves only once a quorum of controllers runs.
  local waited=0
  for id in "${starting[@]}"; do
    until started "${id}"; do
      if ! node_pid "${id}" >/dev/null || [ "${waited}" -ge $((START_TIMEOUT_S * 10)) ]; then
        tail -n 30 "$(node_dir "${id}")/kafka.log" >&2 || true
        die "node ${id} did not come up; see $(node_dir "${id}")/kafka.log."
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
  done
  say "Kafka ready: ${count} node(s), bootstrap $(bootstrap). Shell setup: eval \"\$(bash scripts/kafka.sh env)\""
}

cmd_down() {
  local count id pid stopping=()
  [ -s "${NODES_FILE}" ] || { say "No Kafka cluster in ${KAFKA_DIR}."; return; }
  count="$(cat "${NODES_FILE}")"
  for id in $(seq 1 "${count}"); do
    if pid="$(node_pid "${id}")"; then
      kill -TERM "${pid}"
      stopping+=("${id}:${pid}")
    fi
    done
  local item waited=0
  for item in "${stopping[@]}"; do
    pid="${item#*:}"
    while kill -0 "${pid}" 2>/dev/null; do
      # A node of a cluster whose controllers are already gone waits for them before it gives
      # up its partitions; past 60 s it is killed (its log is recovered on the next start).
      if [ "${waited}" -ge 600 ]; then
        say "node ${item%%:*} (pid ${pid}) did not stop within 60 s: killing it."
        kill -KILL "${pid}" 2>/dev/null || true
        break
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
    rm -f "$(node_dir "${item%%:*}")/kafka.pid"
  done
  say "Kafka stopped (${#stopping[@]} node(s)); topics stay in ${KAFKA_DIR}/node-*/data."
}

cmd_status() {
  local count id pid down=0
  [ -s "${NODES_FILE}" ] || { say "No Kafka cluster in ${KAFKA_DIR}: make stream-up"; return 3; }
  count="$(cat "${NODES_FILE}")"
  for id in $(seq 1 "${count}"); do
    if pid="$(node_pid "${id}")" && port_in_use "$(node_port "${id}" port)"; then
      echo "node ${id} pid ${pid} port $(node_port "${id}" port) up"
    else
      echo "node ${id} pid ${pid:--} port $(node_port "${id}" port) down"
      down=1
    fi
  done
  [ "${down}" -eq 0 ] || return 3
}

bootstrap() {
  local count id list=""
  count="$(cat "${NODES_FILE}" 2>/dev/null || echo "${STREAM_BROKERS:-1}")"
  for id in $(seq 1 "${count}"); do
    list="${list:+${list},}${HOST}:$(node_port "${id}" port)"
  done
  echo "${list}"
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) printf 'export STOCK_ANALYTICS_KAFKA_BOOTSTRAP=%s\n' "$(bootstrap)" ;;
  *) echo "usage: $0 {install|up|down|status|env}" >&2; exit 64 ;;
esac
