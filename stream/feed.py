"""A connection to the feed's broker, whichever backend its settings name."""

from __future__ import annotations

from stream import broker as jetstream
from stream import kafka_broker
from stream.settings import BrokerSettings, KafkaSettings

FeedBroker = jetstream.Broker | kafka_broker.KafkaBroker


async def connect_feed(settings: BrokerSettings | KafkaSettings, wait_s: float | None = 10.0) -> FeedBroker:
    """Kafka for KafkaSettings, else NATS JetStream; waits up to `wait_s` seconds for it (None:
    forever) and raises the backend's error saying what to start or set."""
    if isinstance(settings, KafkaSettings):
        return await kafka_broker.connect(settings, wait_s=wait_s)
    return await jetstream.connect(settings, wait_s=wait_s)
