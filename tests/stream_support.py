"""The `nats_server` fixture: a throwaway NATS JetStream server per test.

from tests.stream_support import nats_server_fixture  # noqa: F401 (`nats_server`)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.nats import NatsServer


@pytest.fixture(name="nats_server")
def nats_server_fixture() -> Iterator[NatsServer]:
    """A fresh server per test; import this (the fixture is called `nats_server`)."""
    server = NatsServer()
    try:
        yield server
    finally:
        server.cleanup()
