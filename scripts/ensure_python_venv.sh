#!/usr/bin/env bash
# Create the project's virtual environment, installing Debian's venv support when it is missing.
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"

command -v "${python}" >/dev/null || { echo "[venv] ERROR: ${python} not found; install Python 3.11+ (apt-get install python3)." >&2; exit 1; }
"${python}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "[venv] ERROR: $(${python} --version) is too old; Python 3.11 or newer is needed." >&2; exit 1; }
[ -x "${venv}/bin/python" ] && exit 0

echo "[venv] creating ${venv} with $(${python} --version) ..."
if ! "${python}" -m venv "${venv}" 2>/dev/null; then
  rm -rf "${venv}"
  # Debian's python3 ships venv's pip bootstrap separately.
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "[venv] installing python3-venv (apt) ..."
    apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q install -y python3-venv >/dev/null
    "${python}" -m venv "${venv}"
  else
    echo "[venv] ERROR: '${python} -m venv' failed; install python3-venv (sudo apt-get install python3-venv)." >&2
    exit 1
  fi
fi
