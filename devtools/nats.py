"""A throwaway NATS JetStream server (tests, bench_stream): a real broker, no mocks.

`NatsServer.stop()` then `.start()` restarts it on the same port and store (a broker restart in
the middle of a stream); `.kill()` is a kill -9.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from devtools.ports import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
START_TIMEOUT_S = 15.0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


class NatsServer:
    """nats-server -js on a free loopback port, its store in a temporary folder."""

    def __init__(self, store_dir: Path | None = None, port: int | None = None) -> None:
        if not Path(NATS_SERVER).exists():
            raise RuntimeError(f"{NATS_SERVER} is missing: `make stream-up` installs nats-server.")
        self._tmp = None if store_dir else tempfile.TemporaryDirectory(prefix="nats-test-")
        self.store_dir = Path(store_dir or self._tmp.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.log_file = self.store_dir / "nats.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    NATS_SERVER,
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-sd",
                    str(self.store_dir / "store"),
                    "-n",
                    f"test-{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"nats-server did not start on port {self.port}; its log:\n"
                    + self.log_file.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM); the store is kept for start()."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """kill -9: what the store has on disk is what survives."""
        self._end(signal.SIGKILL)

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def cleanup(self) -> None:
        self.kill()
        if self._tmp is not None:
            self._tmp.cleanup()
