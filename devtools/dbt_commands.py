"""The test harness's dbt commands, run by the fork server (devtools/dbt_fork_server.py: one
warmed-up process forks a child a command) instead of a `dbt` process each: seconds less a
command, the same environment, folder, output and exit code."""

from __future__ import annotations

import atexit
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from devtools.project import DBT, PROJECT_DIR

_POLL_SECONDS = 0.02


class DbtForkServer:
    """The client: run(args, env, cwd, timeout) as subprocess.run would, without its start-up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        log_fd, self._log_path = tempfile.mkstemp(prefix="dbt_fork_server_", suffix=".log")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "devtools.dbt_fork_server"],
            cwd=PROJECT_DIR,
            env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PYTHONPATH": str(PROJECT_DIR)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_fd,
            text=True,
        )
        os.close(log_fd)
        self._reply()  # ready

    def _reply(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait()
            log = Path(self._log_path).read_text(errors="replace")[-5000:]
            raise RuntimeError(f"the dbt fork server ended (exit {self._process.returncode}):\n{log}")
        return json.loads(line)

    def run(
        self, args: list[str], env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        command = [str(DBT), *args]
        with tempfile.TemporaryDirectory(prefix="dbt_command_") as out:
            out_dir = Path(out)
            request = {"args": list(args), "env": dict(env), "cwd": str(cwd), "out_dir": out}
            with self._lock:
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps(request) + "\n")
                self._process.stdin.flush()
                pid = self._reply()["pid"]
            deadline = time.monotonic() + timeout
            returncode = None
            while returncode is None:
                if (out_dir / "returncode").exists():
                    returncode = int((out_dir / "returncode").read_text())
                elif not _alive(pid):
                    # ended without writing its code: killed by a signal
                    returncode = -signal.SIGKILL
                elif time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(command, timeout, *_outputs(out_dir))
                else:
                    time.sleep(_POLL_SECONDS)
            while _alive(pid):  # the streams are complete once the child is gone
                time.sleep(_POLL_SECONDS)
            stdout, stderr = _outputs(out_dir)
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        os.unlink(self._log_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _outputs(out_dir: Path) -> tuple[str, str]:
    return tuple(  # type: ignore[return-value]
        (out_dir / name).read_text(errors="replace") if (out_dir / name).exists() else ""
        for name in ("stdout", "stderr")
    )


@functools.cache
def dbt_fork_server() -> DbtForkServer:
    """The session's fork server, started on first use and stopped at exit."""
    server = DbtForkServer()
    atexit.register(server.close)
    return server
