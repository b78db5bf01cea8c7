"""What the feed's tests share: a warehouse ready for the feed, bars to publish, waiting, the
`nats_server` fixture (a throwaway NATS JetStream server per test), and a feed on either broker
(NatsFeed, KafkaFeed) for the guarantees both backends give.

from tests.stream_support import nats_server_fixture  # noqa: F401 (`nats_server`)
"""

from __future__ import annotations

import asyncio
import datetime
import random
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from devtools.databases import Database, create_database
from devtools.kafka import KafkaCluster
from devtools.nats import NatsServer
from devtools.project import SAMPLE_DIR
from stream.feed import connect_feed
from stream.messages import Bar, encode_bar, message_id, subject_for
from stream.settings import BrokerSettings, KafkaSettings


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


class Feed:
    """A feed the consumer reads, on one broker: publish bars (or raw payloads) to it, and the
    environment that points stream/consume.py at it."""

    name = ""
    settings: BrokerSettings | KafkaSettings

    def publish(self, bars: Iterable[Bar], unique_ids: bool = True) -> int:
        """Publish bars in the order given. unique_ids: a message id per message (so JetStream's
        de-duplication window never hides a re-send: the warehouse must)."""
        nonce = time.time_ns()
        return self._send(
            (
                subject_for(bar.symbol),
                encode_bar(bar),
                f"{message_id(bar)}#{nonce}.{n}" if unique_ids else message_id(bar),
            )
            for n, bar in enumerate(bars)
        )

    def publish_raw(self, payloads: list[bytes], symbol: str = "RAW") -> int:
        """Payloads as they are, under one symbol's subject (Kafka: key)."""
        nonce = time.time_ns()
        return self._send(
            (subject_for(symbol), payload, f"raw-{n}-{nonce}") for n, payload in enumerate(payloads)
        )

    def _send(self, items: Iterable[tuple[str, bytes, str]]) -> int:
        async def run() -> int:
            broker = await connect_feed(self.settings)
            try:
                await broker.ensure_stream()
                return await broker.publish_many(list(items))
            finally:
                await broker.close()

        return asyncio.run(run())

    def env(self) -> dict[str, str]:
        raise NotImplementedError


class NatsFeed(Feed):
    """The stream BARS on a JetStream server of the test's own."""

    name = "nats"

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.settings = BrokerSettings(url=server.url)

    def env(self) -> dict[str, str]:
        return {"STOCK_ANALYTICS_BROKER": "nats", "STOCK_ANALYTICS_NATS_URL": self.server.url}


class KafkaFeed(Feed):
    """A topic of the test's own on a Kafka cluster (the consumer joins group `warehouse`)."""

    name = "kafka"

    def __init__(self, cluster: KafkaCluster, topic: str) -> None:
        self.cluster = cluster
        self.settings = KafkaSettings(bootstrap=cluster.bootstrap, topic=topic)

    def env(self) -> dict[str, str]:
        return {
            "STOCK_ANALYTICS_BROKER": "kafka",
            "STOCK_ANALYTICS_KAFKA_BOOTSTRAP": self.settings.bootstrap,
            "STOCK_ANALYTICS_KAFKA_TOPIC": self.settings.topic,
        }
