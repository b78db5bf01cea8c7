#!/bin/sh
# PostgreSQL's archive_command for the project cluster (scripts/db.sh writes it):
#   archive_wal.sh <path of the WAL file> <its name> <archive folder>
# Copies under a temporary name, flushes it to disk, then renames: the archive never holds a
# partial segment. A file already archived with the same content succeeds (PostgreSQL retries
# a segment whose earlier copy it did not see confirmed); with other content it fails, loudly,
# rather than overwrite history. Point the archive at other storage by mounting it at the
# folder, or replace this command (docs/operations.md).
set -eu
source_path="$1" name="$2" archive="$3"
target="${archive}/${name}"
if [ -f "${target}" ]; then
  cmp -s "${source_path}" "${target}" && exit 0
  echo "archive_wal: ${target} exists with other content; not overwritten" >&2
  exit 1
fi
cp "${source_path}" "${target}.part"
sync "${target}.part"
mv "${target}.part" "${target}"
sync "${archive}"
