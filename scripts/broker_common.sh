# Sourced by scripts/kafka.sh and scripts/nats.sh: what both brokers' scripts need.
# The sourcing script defines say, die, HOST and PROJECT_DIR first.

port_in_use() { (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null; }

# A port nothing listens on, from the kernel's ephemeral range via a bind to port 0.
free_port() {
  local python
  python="$(command -v python3 || echo "${PROJECT_DIR}/.venv/bin/python")"
  "${python}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# $1: what is missing, $2: the Debian package that provides it, $3: what to do without apt-get.
apt_install() {
  command -v apt-get >/dev/null || die "$1 is missing and there is no apt-get; ${3:-install $2}."
  say "Installing $2 (apt) ..."
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  # A fresh machine's package lists may be empty or stale: update them once, then try again.
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "$2" >/dev/null 2>&1 \
    || { "${sudo[@]}" apt-get update -q >/dev/null \
         && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "$2" >/dev/null; } \
    || die "apt-get install $2 failed."
}
