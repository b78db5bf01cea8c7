#!/usr/bin/env bash
# Install PostgreSQL 15 and TimescaleDB (Apache edition) on Debian 12 when missing.
#
# TimescaleDB has no bookworm package, so we build Debian's own `timescaledb` source
# package from trixie (a stable release that still supports PostgreSQL 15). The trixie
# entry lives in a private apt folder: the system's binary suites stay bookworm.
# Idempotent: returns at once when timescaledb.so is already installed.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
WORK_DIR="${TIMESCALEDB_BUILD_DIR:-/var/tmp/stock_analytics-timescaledb}"

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

pkglibdir() { "${PG_BIN}/pg_config" --pkglibdir 2>/dev/null || true; }

have_postgres() { [ -x "${PG_BIN}/postgres" ] && [ -x "${PG_BIN}/pg_config" ] \
  && [ -d "/usr/include/postgresql/${PG_MAJOR}/server" ]; }
have_timescaledb() { local lib; lib="$(pkglibdir)"; [ -n "$lib" ] && [ -e "${lib}/timescaledb.so" ]; }

if have_postgres && have_timescaledb; then
  say "PostgreSQL ${PG_MAJOR} and TimescaleDB already installed."
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  die "PostgreSQL ${PG_MAJOR} and/or TimescaleDB are missing and installing them needs root.
  Either run 'sudo make db-up' once, or point the project at a server that has TimescaleDB
  by exporting PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE (see README)."
fi
command -v apt-get >/dev/null || die "apt-get not found: this installer supports Debian 12 only.
  Use docker-compose.yml, or set the PG* variables to an existing TimescaleDB server."

export DEBIAN_FRONTEND=noninteractive
APT_QUIET=(-q -o Dpkg::Use-Pty=0)

if ! have_postgres; then
  say "Installing postgresql-${PG_MAJOR} and postgresql-server-dev-${PG_MAJOR} (apt) ..."
  apt-get "${APT_QUIET[@]}" update >/dev/null
  apt-get "${APT_QUIET[@]}" install -y --no-install-recommends \
    "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" >/dev/null \
    || die "apt could not install PostgreSQL ${PG_MAJOR}; see the apt output above."
fi

if have_timescaledb; then
  say "TimescaleDB already installed."
  exit 0
fi

say "Building TimescaleDB from Debian's source package (about a minute) ..."
build_deps=(cmake gcc make dpkg-dev libssl-dev "postgresql-server-dev-${PG_MAJOR}")
missing=()
for pkg in "${build_deps[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "Installing build dependencies: ${missing[*]}"
  apt-get "${APT_QUIET[@]}" update >/dev/null
  apt-get "${APT_QUIET[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt could not install the build dependencies: ${missing[*]}"
fi

rm -rf "${WORK_DIR}"
mkdir -p "${WORK_DIR}/sources.list.d" "${WORK_DIR}/lists/partial" "${WORK_DIR}/src"
# apt downloads as the unprivileged _apt user when it can write the target folder.
id _apt >/dev/null 2>&1 && chown _apt "${WORK_DIR}/src"
# Reuse the mirror the system already uses for bookworm.
archive_uri="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
archive_uri="${archive_uri:-http://deb.debian.org/debian}"
cat > "${WORK_DIR}/sources.list.d/trixie-src.sources" <<SRC
Types: deb-src
URIs: ${archive_uri}
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
private_apt=(-o "Dir::State::Lists=${WORK_DIR}/lists" -o Dir::Etc::SourceList=/dev/null
             -o "Dir::Etc::SourceParts=${WORK_DIR}/sources.list.d")
apt-get "${APT_QUIET[@]}" "${private_apt[@]}" update >/dev/null \
  || die "could not read the trixie source index from ${archive_uri}."
( cd "${WORK_DIR}/src" && apt-get "${APT_QUIET[@]}" "${private_apt[@]}" \
    source --download-only timescaledb/trixie >/dev/null ) \
  || die "could not download the timescaledb source package."
( cd "${WORK_DIR}/src" && dpkg-source -x --no-check ./*.dsc timescaledb >/dev/null ) \
  || die "could not unpack the timescaledb source package."

cd "${WORK_DIR}/src/timescaledb"
log="${WORK_DIR}/build.log"
if ! { PATH="${PG_BIN}:${PATH}" ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
        -DWARNINGS_AS_ERRORS=OFF -DUSE_TELEMETRY=OFF -DPG_CONFIG="${PG_BIN}/pg_config" \
     && make -C build -j"$(nproc)" && make -C build install; } >"${log}" 2>&1; then
  tail -n 30 "${log}" >&2
  die "building TimescaleDB failed; the full log is ${log}."
fi
have_timescaledb || die "the build finished but timescaledb.so is not in $(pkglibdir)."
say "TimescaleDB $(sed -n 's/^version = //p' version.config 2>/dev/null) installed into $(pkglibdir)."
