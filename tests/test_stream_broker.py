"""The broker module against a real nats-server: publish, fetch, acknowledge, redeliver, restart."""

from __future__ import annotations

import asyncio
import datetime
import time

import nats
import pytest

from devtools.nats import NatsServer
from devtools.ports import free_port
from stream.broker import Broker, BrokerError, BrokerSettings, connect
from stream.messages import Bar, decode_bar, encode_bar, message_id, subject_for
from tests.stream_support import nats_server_fixture  # noqa: F401 (`nats_server`)


def bars(count: int, symbol: str = "AAPL") -> list[tuple[str, bytes, str]]:
    start = datetime.date(2024, 1, 1)
    items = []
    for i in range(count):
        bar = Bar(symbol, start + datetime.timedelta(days=i), 0, "1", "2", "0.5", str(i), str(i), "100")
        items.append((subject_for(symbol), encode_bar(bar), message_id(bar)))
    return items


async def open_broker(server: NatsServer, ack_wait_s: float = 30.0) -> Broker:
    broker = await connect(BrokerSettings(url=server.url, ack_wait_s=ack_wait_s))
    await broker.ensure_stream()
    return broker


async def drain(broker: Broker, expect: int, timeout_s: float = 20.0) -> list[int]:
    """Fetch and acknowledge until `expect` distinct sequences came; their sequences in order."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while len(set(seen)) < expect and time.monotonic() < deadline:
        batch = await broker.fetch(500, 0.5)
        seen.extend(d.stream_sequence for d in batch)
        await broker.ack(batch)
    return seen


def test_publish_fetch_ack(nats_server):
    async def scenario():
        broker = await open_broker(nats_server)
        items = bars(3)
        first = await broker.publish(*items[0])
        assert await broker.publish_many(items[1:]) == 2
        assert first == 1
        assert await broker.publish(*items[0]) == 1  # same Nats-Msg-Id: de-duplicated, same sequence
        assert await broker.pending() == 3

        before = datetime.datetime.now(datetime.UTC)
        batch = await broker.fetch(10, 1.0)
        assert [d.stream_sequence for d in batch] == [1, 2, 3]
        assert [d.num_delivered for d in batch] == [1, 1, 1]
        assert [decode_bar(d.data).close for d in batch] == ["0", "1", "2"]
        assert all(abs((before - d.published_at).total_seconds()) < 5 for d in batch)
        assert await broker.pending() == 3  # delivered, not yet acknowledged
        assert await broker.ack(batch) is True
        assert await broker.pending() == 0

        started = time.monotonic()
        assert await broker.fetch(10, 0.3) == []  # nothing left: an empty batch after the timeout
        assert 0.25 < time.monotonic() - started < 2.0
        await broker.close()

    asyncio.run(scenario())


def test_fetch_returns_a_full_batch_without_waiting(nats_server):
    async def scenario():
        broker = await open_broker(nats_server)
        assert await broker.publish_many(bars(250), window=64) == 250
        started = time.monotonic()
        batch = await broker.fetch(100, 10.0)
        assert len(batch) == 100 and time.monotonic() - started < 2.0
        rest = await broker.fetch(1000, 0.5)
        assert [d.stream_sequence for d in batch + rest] == list(range(1, 251))
        await broker.close()

    asyncio.run(scenario())


def test_unacknowledged_batch_is_redelivered_after_ack_wait(nats_server):
    async def scenario():
        broker = await open_broker(nats_server, ack_wait_s=1.0)
        await broker.publish_many(bars(5))
        first = await broker.fetch(5, 1.0)
        assert [d.num_delivered for d in first] == [1] * 5
        await asyncio.sleep(1.3)  # no ack: the consumer "crashed" before its commit
        again = await broker.fetch(5, 2.0)
        assert [d.stream_sequence for d in again] == [1, 2, 3, 4, 5]
        assert [d.num_delivered for d in again] == [2] * 5
        assert [d.data for d in again] == [d.data for d in first]
        await broker.ack(again)
        assert await broker.pending() == 0
        await broker.close()

    asyncio.run(scenario())


def test_acking_the_last_delivery_acks_the_batch(nats_server):
    async def scenario():
        broker = await open_broker(nats_server, ack_wait_s=1.0)
        await broker.publish_many(bars(10))
        batch = await broker.fetch(10, 1.0)
        assert len(batch) == 10
        # ack() sends one AckAll for the highest sequence; the other nine are covered by it.
        assert await broker.ack(batch) is True
        assert await broker.pending() == 0
        await asyncio.sleep(1.3)
        assert await broker.fetch(10, 0.5) == []  # nothing comes back after ack_wait
        await broker.close()

    asyncio.run(scenario())


def test_a_hole_in_the_batch_is_not_acknowledged_past(nats_server):
    """A delivery lost in transit must not be swept up by the AckAll of a later one."""

    async def scenario():
        broker = await open_broker(nats_server, ack_wait_s=1.0)
        await broker.publish_many(bars(10))
        batch = await broker.fetch(10, 1.0)
        lost = batch[5]  # sequence 6 never reached the consumer
        assert await broker.ack(batch[:5] + batch[6:]) is False
        assert await broker.pending() == 5  # 1..5 acknowledged; 6..10 wait
        await asyncio.sleep(1.3)
        again = await broker.fetch(5, 2.0)
        assert [d.stream_sequence for d in again] == [6, 7, 8, 9, 10]
        assert again[0].data == lost.data
        assert await broker.ack(again) is True
        assert await broker.pending() == 0
        await broker.close()

    asyncio.run(scenario())


def test_fetch_survives_a_broker_restart(nats_server):
    async def scenario():
        broker = await open_broker(nats_server)
        await broker.publish_many(bars(200))
        first = await broker.fetch(100, 1.0)
        assert await broker.ack(first) is True

        nats_server.stop()
        assert await broker.fetch(100, 0.5) == []  # the broker is down: no exception, no batch
        nats_server.start()  # same port, same store: the stream and the durable consumer survive

        rest = await drain(broker, 100)
        assert sorted(set(rest)) == list(range(101, 201))
        assert await broker.pending() == 0
        await broker.close()

    asyncio.run(scenario())


def test_publish_many_rides_out_a_broker_restart(nats_server):
    async def scenario():
        broker = await open_broker(nats_server)
        await broker.publish_many(bars(50))
        nats_server.stop()
        restart = asyncio.get_running_loop().run_in_executor(None, restart_later, nats_server)
        # Sent while the server is down: buffered by the client, or re-sent after the restart.
        assert await broker.publish_many(bars(300)) == 300
        await restart
        assert await broker.pending() == 300  # the 50 re-sent ids were de-duplicated
        await broker.close()

    asyncio.run(scenario())


def restart_later(server: NatsServer) -> None:
    time.sleep(1.0)
    server.start()


def test_connect_fails_clearly_when_no_server_answers():
    async def scenario():
        await connect(BrokerSettings(url=f"nats://127.0.0.1:{free_port()}"), wait_s=0.5)

    with pytest.raises(BrokerError, match=r"no NATS server answers at nats://127\.0\.0\.1:\d+ within 0\.5 s"):
        asyncio.run(scenario())


def test_fetch_recreates_a_deleted_durable_consumer(nats_server):
    """An operator deleted the durable: fetch creates it again (from the start: the warehouse
    skips what it already applied) instead of failing or spinning."""

    async def scenario():
        broker = await open_broker(nats_server)
        await broker.publish_many(bars(5))
        assert await broker.ack(await broker.fetch(5, 1.0)) is True

        admin = await nats.connect(nats_server.url)
        await admin.jetstream().delete_consumer("BARS", "warehouse")
        await admin.close()

        broker.consumer_check_s = 0.5  # how long fetches bring nothing before it looks (5 s)
        calls, seen = 0, []
        deadline = time.monotonic() + 10
        while len(seen) < 5 and time.monotonic() < deadline:
            calls += 1
            batch = await broker.fetch(5, 0.5)
            seen += [d.stream_sequence for d in batch]
            await broker.ack(batch)
        assert seen == [1, 2, 3, 4, 5]
        assert calls <= 40  # it waited between attempts rather than spinning
        assert await broker.pending() == 0
        await broker.close()

    asyncio.run(scenario())


def test_a_new_session_gets_what_a_crashed_one_left_unacknowledged_at_once(nats_server):
    """The consumer died after fetching 4..10 and before its commit: the next session gets them
    immediately (not after ack_wait), and acknowledging them leaves nothing pending."""

    async def scenario():
        crashed = await open_broker(nats_server)  # ack_wait 30 s
        await crashed.publish_many(bars(10))
        batch = await crashed.fetch(10, 1.0)
        assert await crashed.ack(batch[:3]) is True
        await crashed.close()  # 4..10 delivered, never acknowledged

        restarted = await open_broker(nats_server)
        started = time.monotonic()
        again = await restarted.fetch(7, 5.0)
        assert [d.stream_sequence for d in again] == [4, 5, 6, 7, 8, 9, 10]
        assert time.monotonic() - started < 3.0
        assert await restarted.ack(again) is True
        assert await restarted.pending() == 0
        await restarted.close()

    asyncio.run(scenario())
