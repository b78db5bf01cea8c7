#!/usr/bin/env bash
# Build the price_series extension (price_series/) with PGXS and install it into the server's
# lib and extension folders, where the installed files differ from the build.
#
# Files are installed by a copy to a temporary name in the target folder and a rename: a running
# server keeps the library it has mapped; new backends load the new one. Run by `make db-up`;
# on another server run it there as root (PG_CONFIG=/path/to/pg_config for another PostgreSQL).
set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config}"

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "${PG_CONFIG}" ] || die "no pg_config at ${PG_CONFIG} (set PG_CONFIG, or install postgresql-server-dev-${PG_MAJOR})."
server_headers="$("${PG_CONFIG}" --includedir-server)"
[ -f "${server_headers}/postgres.h" ] \
  || die "the PostgreSQL server headers are missing (${server_headers}): apt-get install postgresql-server-dev-${PG_MAJOR}"
command -v gcc >/dev/null && command -v make >/dev/null || die "gcc and make are needed: apt-get install gcc make"

build_dir="$(mktemp -d "${TMPDIR:-/tmp}/price_series-build.XXXXXX")"
trap 'rm -rf "${build_dir}"' EXIT
cp "${PROJECT_DIR}"/price_series/{Makefile,price_series.c,price_series.control,price_series--*.sql} "${build_dir}/"
# with_llvm=no: no JIT bitcode, so no clang needed
if ! make -C "${build_dir}" -s PG_CONFIG="${PG_CONFIG}" with_llvm=no >"${build_dir}/build.log" 2>&1 \
   || ! make -C "${build_dir}" -s PG_CONFIG="${PG_CONFIG}" with_llvm=no install DESTDIR="${build_dir}/stage" \
        >>"${build_dir}/build.log" 2>&1; then
  cat "${build_dir}/build.log" >&2
  die "building price_series failed (output above)."
fi

changed=()
while IFS= read -r -d '' path; do
  target="${path#"${build_dir}/stage"}"
  cmp -s "${path}" "${target}" 2>/dev/null || changed+=("${path}")
done < <(find "${build_dir}/stage" -type f -print0)
if [ "${#changed[@]}" -eq 0 ]; then
  say "price_series already installed."
  exit 0
fi
[ "$(id -u)" -eq 0 ] || [ -w "$("${PG_CONFIG}" --pkglibdir)" ] \
  || die "installing price_series into $("${PG_CONFIG}" --pkglibdir) needs root: run 'sudo bash scripts/install_price_series.sh'."
for path in "${changed[@]}"; do
  target="${path#"${build_dir}/stage"}"
  tmp="$(dirname "${target}")/.$(basename "${target}").price_series-new.$$"
  cp --preserve=mode "${path}" "${tmp}" && mv -Tf "${tmp}" "${target}" \
    || { rm -f "${tmp}"; die "could not install ${target}."; }
done
say "price_series installed (${#changed[@]} files)."
