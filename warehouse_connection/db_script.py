"""The variables scripts/db.sh hands out (`env [ROLE]`, `superuser-env`), as a dict."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

DB_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "db.sh"


def parse_exports(text: str) -> dict[str, str]:
    """The variables of `export NAME=VALUE` lines, VALUE shell-quoted as db.sh prints it."""
    exported = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        exported[name] = shlex.split(value)[0] if value else ""
    return exported


def db_script_env(command: str, *args: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What `scripts/db.sh COMMAND ARGS` exports, run with env (default: this process's).

    Raises subprocess.CalledProcessError when the script refuses (say, the libpq variables do
    not point at the project cluster for `superuser-env`).
    """
    out = subprocess.run(
        ["bash", str(DB_SCRIPT), command, *args],
        env=None if env is None else dict(env),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return parse_exports(out)
