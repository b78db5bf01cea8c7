#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is at /usr/bin/chromium: the browser tests drive it
# through its DevTools protocol (tests/browser.py). Never downloads a browser of its own.
# Idempotent and quiet: prints nothing when Chromium is already there.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

say() { printf '[chromium] %s\n' "$*"; }
die() { printf '[chromium] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "${CHROMIUM}" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  die "${CHROMIUM} is missing and installing it needs root: run 'sudo apt-get install chromium' once."
fi
command -v apt-get >/dev/null || die "${CHROMIUM} is missing and apt-get was not found (Debian 12 only); install Chromium so that ${CHROMIUM} exists."

export DEBIAN_FRONTEND=noninteractive
APT_QUIET=(-q -o Dpkg::Use-Pty=0)
say "installing Debian's chromium (apt) ..."
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
if ! { apt-get "${APT_QUIET[@]}" update && apt-get "${APT_QUIET[@]}" install -y --no-install-recommends chromium; } >"${log}" 2>&1; then
  tail -n 20 "${log}" >&2
  die "apt could not install chromium (output above)."
fi
[ -x "${CHROMIUM}" ] || die "apt installed chromium but ${CHROMIUM} does not exist."
say "installed $("${CHROMIUM}" --version 2>/dev/null || echo chromium)"
