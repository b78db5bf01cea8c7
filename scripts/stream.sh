#!/usr/bin/env bash
# The feed's broker, whichever the project runs: Apache Kafka (scripts/kafka.sh, the default) or
# NATS JetStream (scripts/nats.sh), chosen by STOCK_ANALYTICS_BROKER=kafka|nats.
#
#   scripts/stream.sh install  what the tests need of both: nats-server, Java and the Kafka jars
#   scripts/stream.sh up|down|status   the chosen broker's (see its script)
#   scripts/stream.sh env      `export` lines for eval: the chosen broker's address, and the choice
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BACKEND="${STOCK_ANALYTICS_BROKER:-kafka}"
case "${BACKEND}" in
  kafka | nats) ;;
  *) printf '[stream] ERROR: STOCK_ANALYTICS_BROKER is %s: pick kafka or nats.\n' "${BACKEND}" >&2; exit 64 ;;
esac

case "${1:-}" in
  install) bash "${SCRIPTS_DIR}/nats.sh" install && bash "${SCRIPTS_DIR}/kafka.sh" install ;;
  up | down | status) exec bash "${SCRIPTS_DIR}/${BACKEND}.sh" "$1" ;;
  env) bash "${SCRIPTS_DIR}/${BACKEND}.sh" env && printf 'export STOCK_ANALYTICS_BROKER=%s\n' "${BACKEND}" ;;
  *) echo "usage: $0 {install|up|down|status|env}" >&2; exit 64 ;;
esac
