"""The feed's broker, NATS JetStream, behind one small async API: the only module importing nats.

A Kafka client could replace this module; the pieces map one to one:

    JetStream                                   Kafka
    stream BARS, subjects `bars.>`              topic `bars`
    subject token per symbol (`bars.AAPL`)      message key (partition by symbol)
    durable pull consumer `warehouse`           consumer group `warehouse`
    stream sequence                             partition offset
    Nats-Msg-Id de-dup (2 minute window)        idempotent producer (enable.idempotence)
    AckAll on the highest sequence of a batch   committing the batch's last offset
    ack_wait: un-acked deliveries come again    uncommitted offsets are read again after a restart

Either way the broker only de-duplicates within a window and redelivers what was not acknowledged,
so the warehouse must be idempotent (it records the sequences it applied) and the consumer
acknowledges only after its database commit.

One process per durable consumer: with AckAll, acknowledging a sequence acknowledges every lower
one, so two processes sharing a durable would acknowledge each other's work. Scale out with one
durable per symbol range (a filter subject each), as Kafka scales with partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api
from nats.js.client import JetStreamContext

from stream.settings import BrokerSettings, SettingsError, settings_from_env

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerSettings",
    "Delivery",
    "SettingsError",
    "connect",
    "settings_from_env",
]

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_S = 120.0
RETENTION_S = 7 * 24 * 3600.0
MAX_ACK_PENDING = 100_000
RECONNECT_WAIT_S = 0.5
REQUEST_TIMEOUT_S = 5.0
# A publish whose PubAck has not come back by then (a broker restart ate it) is sent again; its
# Nats-Msg-Id makes the second copy a no-op if the first one was stored.
PUBACK_TIMEOUT_S = 10.0
RECONNECT_PATIENCE_S = 1.0
PUBLISH_ATTEMPTS = 30
MAX_BACKOFF_S = 2.0
# Fetches that bring nothing for this long check that the durable consumer still exists.
CONSUMER_CHECK_S = 5.0
# How many missing sequences an acknowledgement looks up in the stream before giving up for now.
GAP_LOOKUPS = 200


class BrokerError(RuntimeError):
    """The broker cannot be reached or refused the request (after retries); the message says why."""


@dataclass(frozen=True)
class Delivery:
    """One message as the consumer receives it."""

    data: bytes
    stream_sequence: int
    num_delivered: int  # 1 the first time, more on a redelivery
    published_at: datetime.datetime  # when the stream stored it (UTC)
    reply: str = field(default="", repr=False, compare=False)  # where its acknowledgement goes


async def connect(settings: BrokerSettings, wait_s: float | None = 10.0) -> Broker:
    """Connect (retrying for up to `wait_s` seconds, None: forever); once connected the client
    reconnects on its own, forever, and logs each disconnect and reconnect."""

    made: list[Broker] = []  # the callbacks stay quiet while the broker closes on purpose

    async def disconnected() -> None:
        if not made or made[0].closing:  # not yet connected, or closing on purpose
            return
        log.warning("broker %s: disconnected; reconnecting", settings.url)

    async def reconnected() -> None:
        log.warning("broker %s: reconnected", settings.url)

    async def error(exc: Exception) -> None:
        last_error[:] = [exc]
        if not nc.is_connected and not warned:
            warned.append(True)
            log.warning("broker %s: not reachable (%s); retrying", settings.url, exc or type(exc).__name__)
        else:
            log.debug("broker %s: %s", settings.url, exc)

    warned: list[bool] = []
    last_error: list[Exception] = []
    nc = Client()
    try:
        # With max_reconnect_attempts=-1 the client also retries the first connection forever.
        await asyncio.wait_for(
            nc.connect(
                settings.url,
                name="stock_analytics",
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_S,
                connect_timeout=2,
                allow_reconnect=True,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
                # Room to queue publishes and acks while the server restarts.
                pending_size=64 << 20,
            ),
            timeout=wait_s,
        )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        with contextlib.suppress(Exception):
            await nc.close()
        cause = last_error[0] if isinstance(exc, TimeoutError) and last_error else exc
        waited = f" within {wait_s:g} s" if isinstance(exc, TimeoutError) and wait_s else ""
        raise BrokerError(
            f"no NATS server answers at {settings.url}{waited} ({cause or type(cause).__name__}); "
            "start one with `STOCK_ANALYTICS_BROKER=nats make stream-up` and set "
            'STOCK_ANALYTICS_NATS_URL (eval "$(bash scripts/nats.sh env)").'
        ) from exc
    if warned:
        log.warning("broker %s: connected", settings.url)
    made.append(Broker(nc, settings))
    return made[0]


class Broker:
    """A connection to the feed's stream: publish bars, fetch and acknowledge them."""

    def __init__(self, nc: Client, settings: BrokerSettings) -> None:
        self.settings = settings
        self._nc = nc
        self.closing = False
        self._js: JetStreamContext = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        # Pull requests: one wildcard inbox, a reply subject per request (see _on_delivery).
        self._inbox = ""
        self._pull_subject = ""
        self._deliveries: Subscription | None = None
        self._buffer: list[Delivery] = []
        self._wanted = 0
        self._request_number = 0
        self._current_reply = ""
        self._request_done = asyncio.Event()
        self._consumer_gone = False
        self._request_status = ""
        self._quiet_since = time.monotonic()
        self.consumer_check_s = CONSUMER_CHECK_S
        # Acknowledgement bookkeeping (see ack): every sequence up to _ack_floor is acknowledged;
        # _done holds the replies of processed deliveries above it.
        self._ack_floor = 0
        self._done: dict[int, str] = {}

    # ---- the stream ------------------------------------------------------------------------
    async def ensure_stream(self) -> None:
        """Create the stream if missing: file storage, limits retention, 2 minute de-dup window."""
        try:
            await self._js.stream_info(self.settings.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        try:
            await self._js.add_stream(
                name=self.settings.stream,
                subjects=[self.settings.subjects],
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                duplicate_window=DUPLICATE_WINDOW_S,
                # The warehouse holds every message it took (raw.feed_messages): the broker keeps
                # a week, for consumers that were down and for replays.
                max_age=RETENTION_S,
            )
        except nats.js.errors.APIError as exc:
            raise BrokerError(f"cannot create stream {self.settings.stream}: {exc}") from exc
        log.info("created stream %s (%s)", self.settings.stream, self.settings.subjects)

    async def stream_key(self) -> str:
        """The stream's name and creation time, e.g. `BARS@2026-11-22T10:41:31.515074+00:00`: a
        stream sequence names a message only within one incarnation of its stream (deleted and
        created again, a stream counts from 1), so the warehouse's ledger keys on this."""
        try:
            info = await self._js.stream_info(self.settings.stream)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BrokerError(
                f"cannot read stream {self.settings.stream}: {exc or type(exc).__name__}"
            ) from exc
        if info.created is None:
            raise BrokerError(f"the server gives no creation time for stream {self.settings.stream}")
        return f"{self.settings.stream}@{info.created.isoformat()}"

    # ---- publishing ------------------------------------------------------------------------
    async def publish(self, subject: str, payload: bytes, msg_id: str) -> int:
        """Publish one message and wait for the broker to store it; returns its stream sequence
        (that of the stored copy when it is a duplicate). Retries through a broker restart."""
        delay = 0.1
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                ack = await self._js.publish(
                    subject, payload, timeout=REQUEST_TIMEOUT_S, headers={"Nats-Msg-Id": msg_id}
                )
                return ack.seq
            except nats.js.errors.APIError as exc:
                if exc.code and exc.code < 500:  # refused (no such stream, bad subject): final
                    raise BrokerError(f"broker refused {subject}: {exc}") from exc
                last: Exception = exc
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                last = exc
            log.info("publish %s: %s (attempt %d); retrying", msg_id, last or type(last).__name__, attempt)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
        raise BrokerError(f"could not publish {msg_id} after {PUBLISH_ATTEMPTS} attempts: {last}")

    async def publish_many(self, items: Iterable[tuple[str, bytes, str]], window: int = 1000) -> int:
        """Publish (subject, payload, msg_id) items keeping up to `window` PubAcks outstanding;
        returns how many the broker confirmed (duplicates it dropped included). Items whose
        PubAck reports an error or never comes are sent again one by one (same id: no double).

        Plain publishes with a reply subject per message on one wildcard inbox: about three times
        the rate of js.publish_async, whose per-message semaphore and future dominate."""
        inbox = self._nc.new_inbox()
        outstanding: dict[str, tuple[str, bytes, str]] = {}
        retry: list[tuple[str, bytes, str]] = []
        confirmed = 0
        room = asyncio.Event()
        low_water = max(window // 2, 1)

        async def on_puback(msg: Msg) -> None:
            nonlocal confirmed
            item = outstanding.pop(msg.subject[len(inbox) + 1 :], None)
            if item is None:
                return
            # A PubAck is {"stream":..,"seq":..}; a refusal carries "error", and a 503 status
            # (no responders: the stream is not there yet after a restart) has no body.
            if msg.data.startswith(b'{"stream"') or (b'"seq"' in msg.data and b'"error"' not in msg.data):
                confirmed += 1
            else:
                retry.append(item)
            if len(outstanding) <= low_water:
                room.set()

        reconnects = self._nc.stats["reconnects"]

        async def wait_for_room(limit: int) -> None:
            nonlocal reconnects
            last_progress = time.monotonic()
            while len(outstanding) > limit:
                room.clear()
                before = len(outstanding)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(room.wait(), timeout=0.25)
                now = time.monotonic()
                if len(outstanding) < before:
                    last_progress = now
                    continue
                # PubAcks lost with a dropped connection never come: after a reconnect, give up on
                # them soon; otherwise allow a slow broker PUBACK_TIMEOUT_S.
                reconnected = self._nc.stats["reconnects"] > reconnects and self._nc.is_connected
                patience = RECONNECT_PATIENCE_S if reconnected else PUBACK_TIMEOUT_S
                if now - last_progress >= patience:
                    retry.extend(outstanding.values())
                    outstanding.clear()
                    reconnects = self._nc.stats["reconnects"]

        sub = await self._nc.subscribe(inbox + ".*", cb=on_puback, pending_msgs_limit=4 * window + 1000)
        try:
            for number, item in enumerate(items):
                subject, payload, msg_id = item
                token = str(number)
                outstanding[token] = item
                try:
                    await self._nc.publish(
                        subject, payload, reply=f"{inbox}.{token}", headers={"Nats-Msg-Id": msg_id}
                    )
                except (nats.errors.Error, OSError) as exc:
                    log.info("publish %s: %s; will retry", msg_id, exc or type(exc).__name__)
                    outstanding.pop(token, None)
                    retry.append(item)
                if len(outstanding) >= window:
                    await wait_for_room(low_water)
            await wait_for_room(0)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if retry:
            log.warning("re-sending %d messages whose PubAck did not arrive", len(retry))
        for subject, payload, msg_id in retry:
            await self.publish(subject, payload, msg_id)
            confirmed += 1
        return confirmed

    # ---- consuming -------------------------------------------------------------------------
    async def _subscription(self) -> None:
        """The durable pull consumer (created if missing) and the inbox its deliveries come to."""
        if self._inbox:
            return
        config = api.ConsumerConfig(
            durable_name=self.settings.durable,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.ALL,
            ack_wait=self.settings.ack_wait_s,
            max_ack_pending=MAX_ACK_PENDING,
            filter_subject=self.settings.subjects,
        )
        try:
            info = await self._js.consumer_info(self.settings.stream, self.settings.durable)
        except nats.js.errors.NotFoundError:
            info = await self._js.add_consumer(self.settings.stream, config)
            log.info("created durable consumer %s on %s", self.settings.durable, self.settings.stream)
        if info.config.ack_policy != api.AckPolicy.ALL:
            raise BrokerError(
                f"consumer {self.settings.durable} exists with ack policy {info.config.ack_policy}; "
                "this consumer needs 'all' (delete it or use another STOCK_ANALYTICS_NATS_DURABLE)."
            )
        stream = await self._js.stream_info(self.settings.stream)
        # Below the stream's first sequence nothing is left to acknowledge (limits dropped it).
        self._ack_floor = max(info.ack_floor.stream_seq or 0, (stream.state.first_seq or 1) - 1)
        if info.num_ack_pending:
            # An earlier session (a crashed consumer) was handed messages it never acknowledged.
            # The server would send them again only after ack_wait, and until then ack() could not
            # pass the hole they leave. Restart the durable right after its ack floor instead:
            # everything unacknowledged comes now (what was already applied is skipped by the
            # warehouse). Safe because one process owns a durable.
            log.warning(
                "consumer %s: %d deliveries of an earlier session were not acknowledged; "
                "restarting it at sequence %d",
                self.settings.durable,
                info.num_ack_pending,
                self._ack_floor + 1,
            )
            await self._js.delete_consumer(self.settings.stream, self.settings.durable)
            await self._js.add_consumer(
                self.settings.stream,
                config.evolve(
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._ack_floor + 1
                ),
            )
        self._done.clear()
        inbox = self._nc.new_inbox()
        self._pull_subject = (
            f"{api.DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{self.settings.stream}.{self.settings.durable}"
        )
        self._deliveries = await self._nc.subscribe(
            inbox + ".*", cb=self._on_delivery, pending_msgs_limit=4 * MAX_ACK_PENDING, pending_bytes_limit=-1
        )
        self._inbox = inbox

    async def _on_delivery(self, msg: Msg) -> None:
        """Messages of every pull request land in the buffer (a late one from an expired request
        too: it is delivered, so it must reach the caller); the status of the current request
        (408 expired, 404 none, 409 consumer gone, 503 JetStream not ready) ends its wait."""
        status = msg.headers.get(api.Header.STATUS) if msg.headers else None
        if status is None and msg.reply:
            self._buffer.append(_delivery(msg))
            if len(self._buffer) >= self._wanted:
                self._request_done.set()
            return
        if status == "100":  # idle heartbeat
            return
        if msg.subject == self._current_reply:
            self._request_status = f"{status} {msg.headers.get(api.Header.DESCRIPTION, '')}".strip()
            # 503: nothing answers the pull request (the consumer, or JetStream, is not there);
            # 409 "Consumer Deleted": the durable was removed. Either way: look it up again.
            if status == "503" or (status == "409" and "deleted" in self._request_status.lower()):
                self._consumer_gone = True
            self._request_done.set()

    async def fetch(self, max_messages: int, timeout_s: float) -> list[Delivery]:
        """A micro-batch: returns once `max_messages` deliveries are in, or `timeout_s` after the
        call with what came by then ([] if nothing). Never raises on a timeout or a broker outage:
        it logs and the next call asks again (the client reconnects in the background)."""
        deadline = time.monotonic() + timeout_s
        if len(self._buffer) < max_messages:
            try:
                await self._pull(max_messages, timeout_s, deadline)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                if isinstance(exc, nats.errors.ConnectionClosedError):
                    raise BrokerError("the broker connection was closed") from exc
                log.warning("fetch: %s; asking again on the next call", exc or type(exc).__name__)
                await asyncio.sleep(max(0.0, min(deadline - time.monotonic(), MAX_BACKOFF_S)))
        batch, self._buffer = self._buffer[:max_messages], self._buffer[max_messages:]
        if batch:
            self._quiet_since = time.monotonic()
        elif time.monotonic() - self._quiet_since > self.consumer_check_s:
            await self._check_consumer()
        return batch

    async def _check_consumer(self) -> None:
        """Quiet for a while: make sure the durable still exists (a pull request to a deleted
        one is simply never answered)."""
        self._quiet_since = time.monotonic()
        try:
            await self._js.consumer_info(self.settings.stream, self.settings.durable)
        except nats.js.errors.NotFoundError:
            self._consumer_gone = True
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            log.debug("consumer check: %s", exc)

    async def _pull(self, max_messages: int, timeout_s: float, deadline: float) -> None:
        if self._consumer_gone:
            log.warning("consumer %s is gone; creating it again", self.settings.durable)
            self._consumer_gone = False
            await self._forget_subscription()
        await self._subscription()
        self._request_number += 1
        self._current_reply = f"{self._inbox}.{self._request_number}"
        self._wanted = max_messages
        self._request_status = ""
        self._request_done.clear()
        request = {"batch": max_messages - len(self._buffer), "expires": int(timeout_s * 1e9)}
        await self._nc.publish(self._pull_subject, json.dumps(request).encode(), reply=self._current_reply)
        remaining = deadline - time.monotonic()
        if remaining > 0 and len(self._buffer) < max_messages:
            # The server ends the request at `expires` (status 408); the local timer covers an
            # outage, where no status comes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._request_done.wait(), timeout=remaining + 0.05)
        if self._request_status[:3] not in ("", "404", "408") and not self._buffer:
            # Refused at once (503, 409 ...): wait a little, or a caller's loop would spin.
            log.warning("fetch: the server answered %s; asking again", self._request_status)
            await asyncio.sleep(max(0.0, min(deadline - time.monotonic(), 0.5)))

    async def _forget_subscription(self) -> None:
        sub, self._deliveries, self._inbox = self._deliveries, None, ""
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def ack(self, deliveries: Iterable[Delivery]) -> bool:
        """Acknowledge processed deliveries; True when everything up to the highest of them is
        confirmed by the server.

        AckAll on sequence N acknowledges every sequence <= N. Deliveries lost in transit (a
        broker restart in the middle of a batch) leave holes below later ones, and acknowledging
        past a hole would drop those messages unseen; so only the unbroken run above the last
        acknowledged sequence is acknowledged. The rest waits for the redelivery that fills the
        hole (after ack_wait), and is then acknowledged too. Holes the stream itself has (deleted
        messages) are recognised by looking the sequence up.
        """
        batch = list(deliveries)
        if not batch:
            return True
        for d in batch:
            if d.stream_sequence > self._ack_floor:
                self._done[d.stream_sequence] = d.reply
        top = max(d.stream_sequence for d in batch)
        upto = await self._contiguous_end()
        if upto > self._ack_floor:
            try:
                await self._nc.request(self._done[upto], b"+ACK", timeout=REQUEST_TIMEOUT_S)
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                log.warning(
                    "ack up to sequence %d not confirmed (%s); it is redelivered and skipped",
                    upto,
                    exc or type(exc).__name__,
                )
                return False
            for seq in [s for s in self._done if s <= upto]:
                del self._done[seq]
            self._ack_floor = upto
        if upto < top:
            log.warning(
                "sequence %d was never delivered here; acknowledged up to %d, the rest up to %d "
                "waits for its redelivery",
                upto + 1,
                upto,
                top,
            )
            return False
        return True

    async def _contiguous_end(self) -> int:
        """The highest sequence reachable from the ack floor through processed deliveries and
        sequences the stream no longer has."""
        seq = self._ack_floor
        lookups = 0
        while True:
            if seq + 1 in self._done:
                seq += 1
                continue
            if not any(s > seq for s in self._done) or lookups >= GAP_LOOKUPS:
                break
            lookups += 1
            try:
                await self._js.get_msg(self.settings.stream, seq + 1)
                break  # the message exists: a real hole, wait for its redelivery
            except nats.js.errors.NotFoundError:
                seq += 1  # deleted from the stream: nothing to wait for
                self._done.setdefault(seq, "")
                continue
            except (nats.errors.Error, TimeoutError, OSError):
                break
        # An acknowledgement needs the reply subject of a delivery: step back to the last real one.
        while seq > self._ack_floor and not self._done.get(seq):
            seq -= 1
        return seq

    async def stream_state(self) -> tuple[int, int]:
        """(the stream's last sequence, the messages the durable has not had acknowledged: every
        message while the durable does not exist yet). Creates nothing: for monitors."""
        info = await self._js.stream_info(self.settings.stream)
        try:
            durable = await self._js.consumer_info(self.settings.stream, self.settings.durable)
        except nats.js.errors.NotFoundError:
            return info.state.last_seq, info.state.messages
        return info.state.last_seq, (durable.num_pending or 0) + (durable.num_ack_pending or 0)

    async def pending(self) -> int:
        """Messages the durable consumer has not had acknowledged: waiting plus in flight."""
        await self._subscription()  # the durable exists from here on
        sub_info = await self._js.consumer_info(self.settings.stream, self.settings.durable)
        return (sub_info.num_pending or 0) + (sub_info.num_ack_pending or 0)

    async def close(self) -> None:
        self.closing = True
        try:
            await self._nc.drain()
        except (nats.errors.Error, TimeoutError, OSError):
            await self._nc.close()


def _delivery(msg: Msg) -> Delivery:
    # The ack subject carries the metadata: $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.
    # <consumer seq>.<timestamp ns>.<pending>, with <domain>.<account hash> after ACK (and a
    # trailing token) in the newer 12-token form. Parsed here: Msg.metadata costs a third more.
    tokens = msg.reply.split(".")
    base = 2 if len(tokens) == 9 else 4
    return Delivery(
        data=msg.data,
        stream_sequence=int(tokens[base + 3]),
        num_delivered=int(tokens[base + 2]),
        published_at=datetime.datetime.fromtimestamp(int(tokens[base + 5]) / 1e9, datetime.UTC),
        reply=msg.reply,
    )
