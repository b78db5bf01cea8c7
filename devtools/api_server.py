"""Start `python -m api` as a child process on a free local port and wait until it answers
/health: what the tests and the load benchmark both need."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx2

from devtools.ports import free_port
from devtools.project import PROJECT_DIR


class ApiStartError(Exception):
    """The API exited or did not answer in time; the message names its log."""


def start(
    env: dict[str, str], log_path: Path, workers: int = 1, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], str]:
    """The server process (in a session of its own, so killpg stops its workers too) and its URL."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=PROJECT_DIR,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ApiStartError(f"the API exited at start-up; see {log_path}")
        try:
            if httpx2.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise ApiStartError(f"the API did not answer /health within {timeout:.0f} s; see {log_path}")
        time.sleep(0.3)
