#!/usr/bin/env bash
# Install PostgreSQL 15 and TimescaleDB on Debian 12 when missing.
#
# Which TimescaleDB edition:
# - By default the Apache edition (license 'apache'). TimescaleDB has no bookworm package, so we
#   build Debian's own `timescaledb` source package from trixie (a stable release that still
#   supports PostgreSQL 15). Debian strips `tsl/` from it, so it cannot build anything else.
#   The trixie entry lives in a private apt folder: the system's binary suites stay bookworm.
# - TIMESCALEDB_SOURCE=/path/timescaledb-X.Y.Z.tar.gz: the community edition (license
#   'timescale': compression, continuous aggregates, policies) built from an upstream source
#   archive that includes `tsl/`. TIMESCALEDB_PATCHES: space-separated patch files applied
#   (patch -p1) before the build. It replaces an Apache-only build.
#
# Files are installed by a copy to a temporary name in the target folder and a rename, never
# written in place: a running server keeps the .so files it has mapped, and new backends
# (or the next restart) load the new ones.
# Idempotent: returns at once when timescaledb.so is installed (no source given), or when
# timescaledb-tsl-<version>.so of the given archive's version is installed.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
WORK_DIR="$(realpath -m "${TIMESCALEDB_BUILD_DIR:-/var/tmp/stock_analytics-timescaledb}")"
SOURCE="${TIMESCALEDB_SOURCE:+$(realpath -m "${TIMESCALEDB_SOURCE}")}"
read -r -a PATCHES <<<"${TIMESCALEDB_PATCHES:-}"
BUILD_FLAGS=(-DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DUSE_TELEMETRY=OFF)

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

pkglibdir() { "${PG_BIN}/pg_config" --pkglibdir 2>/dev/null || true; }

have_postgres() { [ -x "${PG_BIN}/postgres" ] && [ -x "${PG_BIN}/pg_config" ] \
  && [ -d "/usr/include/postgresql/${PG_MAJOR}/server" ]; }
have_timescaledb() { local lib; lib="$(pkglibdir)"; [ -n "$lib" ] && [ -e "${lib}/timescaledb.so" ]; }
# The community edition of version $1: the loader, the core module and the TSL module.
have_community() {
  local lib; lib="$(pkglibdir)"
  [ -n "$lib" ] && [ -e "${lib}/timescaledb.so" ] && [ -e "${lib}/timescaledb-$1.so" ] \
    && [ -e "${lib}/timescaledb-tsl-$1.so" ]
}

# Check the archive and the patches before anything is installed; sets SOURCE_TOP (the
# archive's top folder) and SOURCE_VERSION.
inspect_source() {
  [ -f "${SOURCE}" ] && [ -r "${SOURCE}" ] \
    || die "TIMESCALEDB_SOURCE=${SOURCE}: no such readable file (give the path of an upstream
  TimescaleDB source archive, e.g. timescaledb-2.19.3.tar.gz)."
  local listing
  listing="$(tar -tzf "${SOURCE}" 2>/dev/null)" \
    || die "TIMESCALEDB_SOURCE=${SOURCE} is not a readable .tar.gz archive."
  SOURCE_TOP="$(grep -m1 -E '^[^/]+/version\.config$' <<<"${listing}" | cut -d/ -f1 || true)"
  [ -n "${SOURCE_TOP}" ] \
    || die "TIMESCALEDB_SOURCE=${SOURCE} is not a TimescaleDB source archive (no <folder>/version.config)."
  grep -q -E "^${SOURCE_TOP}/tsl/" <<<"${listing}" \
    || die "TIMESCALEDB_SOURCE=${SOURCE} has no tsl/ folder, so it can only build the Apache edition
  (Debian's +dfsg source strips it). Use the upstream archive of a release tag."
  SOURCE_VERSION="$(tar -xzOf "${SOURCE}" "${SOURCE_TOP}/version.config" | sed -n 's/^version = //p')"
  [[ "${SOURCE_VERSION}" =~ ^[0-9A-Za-z.+~-]+$ ]] \
    || die "TIMESCALEDB_SOURCE=${SOURCE}: cannot read the version from ${SOURCE_TOP}/version.config."
  local patch_file
  for patch_file in "${PATCHES[@]}"; do
    [ -f "${patch_file}" ] && [ -r "${patch_file}" ] \
      || die "TIMESCALEDB_PATCHES: no such readable patch file: ${patch_file}"
  done
}

# Install every file `make install DESTDIR=$1` staged: copy it to a temporary name beside its
# target, then rename it over the target (atomic; an mmapped old file stays intact).
install_staged() {
  local stage="$1" path target dir tmp count=0
  while IFS= read -r -d '' path; do
    target="${path#"${stage}"}"
    dir="$(dirname "${target}")"
    mkdir -p "${dir}"
    tmp="${dir}/.$(basename "${target}").stock_analytics-new.$$"
    rm -f "${tmp}"
    cp -P --preserve=mode "${path}" "${tmp}" || die "could not copy ${path} to ${dir}."
    mv -Tf "${tmp}" "${target}" || { rm -f "${tmp}"; die "could not install ${target}."; }
    count=$((count + 1))
  done < <(find "${stage}" \( -type f -o -type l \) -print0)
  [ "${count}" -gt 0 ] || die "the build staged no files in ${stage}."
  say "Installed ${count} files (copy + rename)."
}

ensure_build_deps() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "Installing build dependencies: ${missing[*]}"
    apt-get "${APT_QUIET[@]}" update >/dev/null
    apt-get "${APT_QUIET[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null \
      || die "apt could not install the build dependencies: ${missing[*]}"
  fi
}

# $1: the unpacked source folder, $2: the build log; the remaining arguments go to bootstrap.
build_and_install() {
  local src="$1" log="$2"; shift 2
  local stage="${src%/*}/stage"
  rm -rf "${stage}"
  if ! ( cd "${src}" && PATH="${PG_BIN}:${PATH}" BUILD_FORCE_REMOVE=true ./bootstrap "$@" \
           -DPG_CONFIG="${PG_BIN}/pg_config" \
       && make -C build -j"$(nproc)" && make -C build install DESTDIR="${stage}" ) >"${log}" 2>&1; then
    tail -n 30 "${log}" >&2
    die "building TimescaleDB failed; the full log is ${log}."
  fi
  install_staged "${stage}"
}

if [ -n "${SOURCE}" ]; then
  inspect_source
  if have_postgres && have_community "${SOURCE_VERSION}"; then
    say "PostgreSQL ${PG_MAJOR} and the TimescaleDB ${SOURCE_VERSION} community edition already installed."
    exit 0
  fi
elif have_postgres && have_timescaledb; then
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

if [ -n "${SOURCE}" ]; then
  if have_timescaledb && ! compgen -G "$(pkglibdir)/timescaledb-tsl-*.so" >/dev/null; then
    say "Replacing the installed Apache-only TimescaleDB build with the community edition."
  fi
  say "Building the TimescaleDB ${SOURCE_VERSION} community edition from ${SOURCE} (about a minute) ..."
  ensure_build_deps cmake gcc make libssl-dev patch "postgresql-server-dev-${PG_MAJOR}"
  community_dir="${WORK_DIR}/community"
  rm -rf "${community_dir}"
  mkdir -p "${community_dir}"
  tar -xzf "${SOURCE}" -C "${community_dir}" || die "could not unpack ${SOURCE}."
  for patch_file in "${PATCHES[@]}"; do
    say "Applying $(basename "${patch_file}")"
    patch -d "${community_dir}/${SOURCE_TOP}" -p1 --batch --forward <"${patch_file}" >/dev/null \
      || die "the patch ${patch_file} does not apply to ${SOURCE_TOP}."
  done
  # No APACHE_ONLY: the build includes tsl/ (timescaledb-tsl-<version>.so).
  build_and_install "${community_dir}/${SOURCE_TOP}" "${community_dir}/build.log" "${BUILD_FLAGS[@]}"
  have_community "${SOURCE_VERSION}" \
    || die "the build finished but timescaledb-tsl-${SOURCE_VERSION}.so is not in $(pkglibdir)."
  say "TimescaleDB ${SOURCE_VERSION} community edition installed into $(pkglibdir)."
  exit 0
fi

if have_timescaledb; then
  say "TimescaleDB already installed."
  exit 0
fi

say "Building TimescaleDB from Debian's source package (about a minute) ..."
ensure_build_deps cmake gcc make dpkg-dev libssl-dev "postgresql-server-dev-${PG_MAJOR}"

rm -rf "${WORK_DIR}/debian"
mkdir -p "${WORK_DIR}/debian/sources.list.d" "${WORK_DIR}/debian/lists/partial" "${WORK_DIR}/debian/src"
# apt downloads as the unprivileged _apt user when it can write the target folder.
id _apt >/dev/null 2>&1 && chown _apt "${WORK_DIR}/debian/src"
# Reuse the mirror the system already uses for bookworm.
archive_uri="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
archive_uri="${archive_uri:-http://deb.debian.org/debian}"
cat > "${WORK_DIR}/debian/sources.list.d/trixie-src.sources" <<SRC
Types: deb-src
URIs: ${archive_uri}
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
private_apt=(-o "Dir::State::Lists=${WORK_DIR}/debian/lists" -o Dir::Etc::SourceList=/dev/null
             -o "Dir::Etc::SourceParts=${WORK_DIR}/debian/sources.list.d")
apt-get "${APT_QUIET[@]}" "${private_apt[@]}" update >/dev/null \
  || die "could not read the trixie source index from ${archive_uri}."
( cd "${WORK_DIR}/debian/src" && apt-get "${APT_QUIET[@]}" "${private_apt[@]}" \
    source --download-only timescaledb/trixie >/dev/null ) \
  || die "could not download the timescaledb source package."
( cd "${WORK_DIR}/debian/src" && dpkg-source -x --no-check ./*.dsc timescaledb >/dev/null ) \
  || die "could not unpack the timescaledb source package."

build_and_install "${WORK_DIR}/debian/src/timescaledb" "${WORK_DIR}/debian/build.log" \
  -DAPACHE_ONLY=1 "${BUILD_FLAGS[@]}"
have_timescaledb || die "the build finished but timescaledb.so is not in $(pkglibdir)."
say "TimescaleDB $(sed -n 's/^version = //p' "${WORK_DIR}/debian/src/timescaledb/version.config" 2>/dev/null) (Apache edition) installed into $(pkglibdir)."
