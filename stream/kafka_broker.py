"""The feed on Apache Kafka: the only module importing confluent_kafka.

Topic `bars`, keyed by symbol (one symbol's bars stay in one partition, in order), 12 partitions,
7 days' retention; on a cluster of three or more nodes every partition has 3 replicas and a write
needs 2 (`min.insync.replicas`). The producer waits for every in-sync replica (`acks=all`) and is
idempotent, so its own retries never store a bar twice.

The consumer joins group `warehouse` and takes the partitions the group assigns it, but the
warehouse, not Kafka, holds the truth of what was taken: `on_assign` asks the caller for the
stored next offset of each assigned partition and starts there. Offsets committed to Kafka after
a batch are a hint for tools (lag monitors), nothing more.

The same async surface as stream.broker (ensure_stream, stream_key, stream_state, publish_many,
fetch, ack, close), so publish.py, consume.py and the benchmarks run on either backend.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from stream.messages import symbol_of_subject
from stream.settings import KafkaSettings

log = logging.getLogger(__name__)

RETENTION_MS = 7 * 24 * 3600 * 1000
# Waits for an answer from the cluster (metadata, topic creation, watermarks).
REQUEST_TIMEOUT_S = 10.0
# The producer queues this many messages before produce() must wait for deliveries.
PRODUCE_QUEUE = 200_000


class KafkaBrokerError(RuntimeError):
    """The cluster cannot be reached or refused the request; the message says why."""


class OffsetsBehindRetention(RuntimeError):
    """A stored offset points at messages the topic no longer keeps; the message says what to do."""


@dataclass(frozen=True)
class KafkaDelivery:
    """One message as the consumer receives it (the fields warehouse.write_batch reads, and the
    partition it came from)."""

    data: bytes
    partition: int
    stream_sequence: int  # the offset in its partition
    published_at: datetime.datetime
    num_delivered: int = 1  # Kafka does not count redeliveries


StoredOffsets = Callable[[dict[int, int]], dict[int, int]]
"""{partition: the topic's first retained offset} -> {partition: the warehouse's next offset}:
the caller's database, read (for a partition never taken, written) when the group assigns them."""


def _check(futures: dict[str, object], what: str, tolerated: Iterable[int] = ()) -> None:
    for name, future in futures.items():
        try:
            future.result(timeout=REQUEST_TIMEOUT_S)  # type: ignore[attr-defined]
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in tolerated:
                continue
            raise KafkaBrokerError(f"{what} {name}: {error.str()}") from exc


async def connect(settings: KafkaSettings, wait_s: float | None = 10.0) -> KafkaBroker:
    """A handle on the cluster, once it answers (within `wait_s` seconds; None: wait forever)."""
    broker = KafkaBroker(settings)
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        try:
            broker.brokers()
            return broker
        except KafkaException as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise KafkaBrokerError(
                    f"no Kafka broker answers at {settings.bootstrap} within {wait_s:g} s "
                    f"({exc.args[0].str()}); "
                    "start the project's with `make stream-up`, or set STOCK_ANALYTICS_KAFKA_BOOTSTRAP."
                ) from exc
            await asyncio.sleep(0.5)


class KafkaBroker:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        # librdkafka's own log lines go to this module's logger, not to stderr.
        self._common = {
            "bootstrap.servers": settings.bootstrap,
            "client.id": "stock_analytics",
            "logger": logging.getLogger("stream.kafka_broker.librdkafka"),
        }
        self._admin = AdminClient(self._common)
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._stored_offsets: StoredOffsets | None = None
        # Where the consumer stands in each partition it owns: the next offset it expects (the
        # warehouse's when it took the partition, then after each batch it wrote). A batch is
        # written only if the stored offset still equals it (the fence).
        self.positions: dict[int, int] = {}
        self._callback_error: BaseException | None = None
        self.closing = False
        # The group has answered once (an assignment, maybe of no partition): before that an
        # idle consumer is still joining, not drained.
        self.ready = False

    # ---- the topic -------------------------------------------------------------------------
    def brokers(self) -> int:
        """How many brokers the cluster has (raises KafkaException if none answers)."""
        metadata = self._admin.list_topics(timeout=min(REQUEST_TIMEOUT_S, 2.0))
        return len(metadata.brokers)

    async def ensure_stream(self) -> None:
        """Create topic `bars` if missing: 12 partitions, 7 days, replicated 3 ways on a cluster."""
        metadata = self._admin.list_topics(timeout=REQUEST_TIMEOUT_S)
        if self.settings.topic in metadata.topics:
            return
        replicas = min(3, len(metadata.brokers))
        topic = NewTopic(
            self.settings.topic,
            num_partitions=self.settings.partitions,
            replication_factor=replicas,
            config={
                "retention.ms": str(RETENTION_MS),
                "min.insync.replicas": "2" if replicas >= 3 else "1",
            },
        )
        _check(
            self._admin.create_topics([topic], request_timeout=REQUEST_TIMEOUT_S),
            "cannot create topic",
            tolerated=[KafkaError.TOPIC_ALREADY_EXISTS],
        )
        log.info(
            "created topic %s (%d partitions, %d replicas)",
            self.settings.topic,
            self.settings.partitions,
            replicas,
        )

    async def stream_key(self) -> str:
        """`bars@<topic id>`: an offset names a message only within one incarnation of the topic
        (deleted and created again, each partition counts from 0), so the warehouse keys on this."""
        futures = self._admin.describe_topics(TopicCollection([self.settings.topic]))
        try:
            description = futures[self.settings.topic].result(timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            raise KafkaBrokerError(
                f"cannot describe topic {self.settings.topic}: {exc.args[0].str()}"
            ) from exc
        return f"{self.settings.topic}@{description.topic_id}"

    async def stream_state(self) -> tuple[int, None]:
        """(the messages the topic has taken: its partitions' end offsets summed, None: the
        warehouse, not the group, knows what is pending). Creates nothing: for monitors."""
        metadata = self._admin.list_topics(self.settings.topic, timeout=REQUEST_TIMEOUT_S)
        topic = metadata.topics[self.settings.topic]
        if topic.error is not None:
            raise KafkaBrokerError(f"cannot read topic {self.settings.topic}: {topic.error.str()}")
        futures = self._admin.list_offsets(
            {TopicPartition(self.settings.topic, number): OffsetSpec.latest() for number in topic.partitions},
            request_timeout=REQUEST_TIMEOUT_S,
        )
        try:
            return sum(future.result().offset for future in futures.values()), None
        except KafkaException as exc:
            raise KafkaBrokerError(f"cannot read the end offsets of {self.settings.topic}: {exc}") from exc

    # ---- publishing ------------------------------------------------------------------------
    def _producer_client(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                {
                    **self._common,
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 5,
                    "compression.type": "lz4",
                    "queue.buffering.max.messages": PRODUCE_QUEUE,
                }
            )
        return self._producer

    async def publish_many(self, items: Iterable[tuple[str, bytes, str]], window: int = 0) -> int:
        """Publish (subject, payload, message id) items, keyed by the subject's symbol; returns
        how many the cluster stored once every one is acknowledged by all in-sync replicas.
        `window` is the NATS backend's; here librdkafka's queue bounds what is in flight."""
        producer = self._producer_client()
        confirmed = 0
        failed: list[str] = []

        def delivered(error: KafkaError | None, message: Message) -> None:
            nonlocal confirmed
            if error is None:
                confirmed += 1
            else:
                failed.append(f"{message.key()!r}: {error.str()}")

        for subject, payload, msg_id in items:
            key = symbol_of_subject(subject).encode()
            while True:
                try:
                    producer.produce(
                        self.settings.topic,
                        value=payload,
                        key=key,
                        headers={"msg_id": msg_id},
                        on_delivery=delivered,
                    )
                    break
                except BufferError:  # the queue is full: let deliveries drain it
                    producer.poll(0.05)
            producer.poll(0)
        # The idempotent producer retries on its own until delivery.timeout.ms (2 minutes).
        remaining = producer.flush(timeout=180)
        if failed or remaining:
            raise KafkaBrokerError(
                f"{len(failed) + remaining} message(s) not stored "
                f"(first: {failed[0] if failed else 'no acknowledgement within 180 s'})"
            )
        return confirmed

    # ---- consuming -------------------------------------------------------------------------
    def subscribe(self, stored_offsets: StoredOffsets) -> None:
        """Join the consumer group; each assigned partition starts at the offset
        `stored_offsets` gives (the warehouse's)."""
        self._stored_offsets = stored_offsets
        self._consumer = Consumer(
            {
                **self._common,
                "group.id": self.settings.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": int(self.settings.session_timeout_s * 1000),
                "heartbeat.interval.ms": max(100, int(self.settings.session_timeout_s * 1000 / 3)),
                "enable.partition.eof": False,
            }
        )
        self._consumer.subscribe(
            [self.settings.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            numbers = [tp.partition for tp in partitions]
            first_kept = {}
            for tp in partitions:
                first_kept[tp.partition], _ = consumer.get_watermark_offsets(tp, timeout=REQUEST_TIMEOUT_S)
            assert self._stored_offsets is not None
            stored = self._stored_offsets(first_kept)
            behind = {p: (stored[p], first_kept[p]) for p in numbers if stored[p] < first_kept[p]}
            if behind:
                raise OffsetsBehindRetention(
                    f"the warehouse's next offset is older than what topic {self.settings.topic} keeps in "
                    f"partition(s) {', '.join(f'{p} ({s} < {k})' for p, (s, k) in sorted(behind.items()))}: "
                    "the consumer was down longer than the retention (7 days), and those bars are gone "
                    "from the broker. Load the missing days from files (python loader/copy_csv.py), then "
                    "move the stored offsets to the topic's first ones: "
                    "stream/consume.py --broker kafka --skip-to-retained (docs/stream.md)."
                )
            for tp in partitions:
                tp.offset = stored[tp.partition]
                self.positions[tp.partition] = stored[tp.partition]
            consumer.assign(partitions)
            self.ready = True
            log.info("assigned partitions %s at offsets %s", numbers, [stored[p] for p in numbers])
        except BaseException as exc:  # raised again from fetch(): a callback cannot raise through librdkafka
            self._callback_error = exc
            consumer.assign([])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop(tp.partition, None)
        if partitions:
            log.info("partitions %s revoked", [tp.partition for tp in partitions])
        consumer.unassign()

    async def fetch(self, max_messages: int, timeout_s: float) -> list[KafkaDelivery]:
        """Up to `max_messages` messages within `timeout_s` ([] if none), only of partitions this
        consumer owns, from the position it stands at (a message before it is a duplicate left
        from before a seek)."""
        assert self._consumer is not None, "subscribe() first"
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error
        batch = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaBrokerError(f"consumer: {error.str()}")
                log.warning("consumer: %s", error.str())
                continue
            partition, offset = message.partition(), message.offset()
            if partition not in self.positions or offset < self.positions[partition]:
                continue
            _, stamp_ms = message.timestamp()
            batch.append(
                KafkaDelivery(
                    data=message.value() or b"",
                    partition=partition,
                    stream_sequence=offset,
                    published_at=datetime.datetime.fromtimestamp(stamp_ms / 1000, datetime.UTC),
                )
            )
        await asyncio.sleep(0)
        return batch

    def seek(self, partition: int, offset: int) -> None:
        """Stand at `offset` in `partition` again (after a fenced batch), if still owned."""
        if partition not in self.positions or self._consumer is None:
            return
        self.positions[partition] = offset
        self._consumer.seek(TopicPartition(self.settings.topic, partition, offset))

    async def ack(self, deliveries: Iterable[KafkaDelivery]) -> bool:
        """Tell the group how far the warehouse got (a hint for lag monitors; the warehouse keeps
        the offsets that count). Never fails the batch."""
        if self._consumer is None:
            return True
        upto: dict[int, int] = {}
        for delivery in deliveries:
            upto[delivery.partition] = max(upto.get(delivery.partition, -1), delivery.stream_sequence + 1)
        if upto:
            offsets = [TopicPartition(self.settings.topic, p, o) for p, o in upto.items()]
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:
                log.debug("offset hint not committed: %s", exc)
        return True

    async def close(self) -> None:
        self.closing = True
        if self._consumer is not None:
            self._consumer.close()  # leaves the group at once: its partitions go to the others now
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(timeout=REQUEST_TIMEOUT_S)
            self._producer = None


__all__ = [
    "KafkaBroker",
    "KafkaBrokerError",
    "KafkaDelivery",
    "OffsetsBehindRetention",
    "connect",
]
