"""A throwaway Kafka cluster (tests, benchmarks): the project's own scripts/kafka.sh, run in a
temporary state folder, so what users start is what is tested. No mocks.

`KafkaCluster(nodes=3)` formats and starts the nodes; `.kill(node)` is a kill -9 of one,
`.up()` starts whatever is down again, `.cleanup()` stops all and removes the folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from devtools.project import PROJECT_DIR

KAFKA_SCRIPT = PROJECT_DIR / "scripts" / "kafka.sh"
START_TIMEOUT_S = 180


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever adopted it (the node is no child of ours)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


class KafkaCluster:
    def __init__(self, nodes: int = 1) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="kafka-test-")
        self.state_dir = Path(self._tmp.name)
        self.nodes = nodes
        self.up()

    def _script(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "STOCK_ANALYTICS_STATE_DIR": str(self.state_dir),
            "STREAM_BROKERS": str(self.nodes),
        }
        proc = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"scripts/kafka.sh {command} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        return proc

    def up(self) -> None:
        """Start every node that is down (all, the first time)."""
        self._script("up")

    def status(self) -> list[str]:
        return self._script("status", check=False).stdout.splitlines()

    @property
    def bootstrap(self) -> str:
        return self._script("env").stdout.strip().partition("=")[2]

    def pid(self, node: int) -> int:
        return int((self.node_dir(node) / "kafka.pid").read_text())

    def node_dir(self, node: int) -> Path:
        return self.state_dir / "kafka" / f"node-{node}"

    def kill(self, node: int) -> None:
        """kill -9 of one node: what its log has on disk is what it restarts with."""
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def log(self, node: int) -> str:
        return (self.node_dir(node) / "kafka.log").read_text(errors="replace")

    def cleanup(self) -> None:
        self._script("down", check=False)
        self._tmp.cleanup()
