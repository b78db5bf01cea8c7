"""What the feed's tests share: a warehouse ready for the feed, bars to publish, waiting, and
the `nats_server` fixture (a throwaway NATS JetStream server per test).

from tests.stream_support import nats_server_fixture  # noqa: F401 (`nats_server`)
"""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.databases import Database, create_database
from devtools.nats import NatsServer
from devtools.project import SAMPLE_DIR
from stream.messages import Bar


@pytest.fixture(name="nats_server")
def nats_server_fixture() -> Iterator[NatsServer]:
    """A fresh server per test; import this (the fixture is called `nats_server`)."""
    server = NatsServer()
    try:
        yield server
    finally:
        server.cleanup()


def feed_database(work_dir: Path, prefix: str) -> Database:
    """A warehouse ready for the feed: migrations and the symbols metadata loaded, models built,
    no prices yet."""
    db = create_database(work_dir, prefix=prefix)
    proc = db.run_loader(SAMPLE_DIR / "symbols_valid_meta.csv")
    assert proc.returncode == 0, proc.stderr
    build = db.dbt("build", "--exclude", "test_type:data")
    assert build.returncode == 0, build.stdout[-3000:]
    return db


def random_bars(symbols: list[str], days: int, revisions: int, seed: int) -> list[Bar]:
    """Bars in publishing order: day by day, each symbol's revisions 0..n-1 of that day."""
    rng = random.Random(seed)
    start = datetime.date(2024, 1, 1)
    price = dict.fromkeys(symbols, 100.0)
    bars = []
    for day in range(days):
        trade_date = start + datetime.timedelta(days=day)
        for symbol in symbols:
            for revision in range(revisions):
                price[symbol] *= 1 + rng.uniform(-0.02, 0.02)
                close = round(price[symbol], 4)
                bars.append(
                    Bar(
                        symbol,
                        trade_date,
                        revision,
                        open=str(round(close * 0.99, 4)),
                        high=str(round(close * 1.01, 4)),
                        low=str(round(close * 0.98, 4)),
                        close=str(close),
                        adj_close=str(close),
                        volume=str(rng.randrange(1_000, 1_000_000)),
                    )
                )
    return bars


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
