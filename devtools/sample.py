"""The bundled sample (data/sample): its files' line counts, and a database built from it."""

from __future__ import annotations

import subprocess

from devtools.databases import Database
from devtools.project import SAMPLE_DIR


def sample_data_lines() -> dict[str, int]:
    """Data lines per price file of the bundled sample, counted straight from the files."""
    counts = {}
    for path in sorted([*SAMPLE_DIR.glob("stocks/*.csv"), *SAMPLE_DIR.glob("etfs/*.csv")]):
        with path.open("rb") as fh:
            counts[path.stem] = sum(1 for line in fh if line.strip()) - 1
    return counts


def load_and_build_sample(
    db: Database, *dbt_args: str
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str] | None]:
    """The loader over the whole sample, then `dbt build DBT_ARGS` when the load went through
    (None otherwise): the processes, for the caller to check."""
    load = db.run_loader(SAMPLE_DIR)
    build = db.dbt("build", *dbt_args) if load.returncode == 0 else None
    return load, build
