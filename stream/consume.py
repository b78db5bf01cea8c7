"""The live feed's consumer: bars from the broker into the warehouse, exactly once.

    python stream/consume.py                      # run until stopped (Ctrl-C, SIGTERM)
    python stream/consume.py --exit-when-idle 5   # stop once the stream is drained and idle 5 s

Connects to the database with the libpq variables (PGHOST, PGPORT, PGUSER, ...: run it as the
`streamer` role, `eval "$(make -s env ROLE=streamer)"`) and to the broker: Kafka (the default)
at STOCK_ANALYTICS_KAFKA_BOOTSTRAP or the project's own cluster, or with --broker nats (or
STOCK_ANALYTICS_BROKER=nats) NATS JetStream at STOCK_ANALYTICS_NATS_URL.

On Kafka the consumer joins group `warehouse`: start several, and each takes the partitions the
group gives it, starting at the offsets the warehouse stored (raw.feed_offsets). Each
micro-batch (--batch-size messages, --linger seconds after its first or --max-wait seconds in all,
whichever comes first) is one transaction per partition in the raw layer (stream/warehouse.py),
which moves the partition's stored offset behind a fence (a consumer that lost the partition
writes nothing); on JetStream it is one transaction, acknowledged after its commit. Then the
incremental step runs for the symbols it touched (stream/incremental.py). When the database is
unavailable the consumer waits and retries the same batch; when a broker restarts it reconnects
and goes on. A bad message is kept with its reason and never stops it.

Exit codes: 0 stopped, every message taken; 2 stopped, and some messages were rejected (see
raw.load_rejects); 1 could not run (no broker, no feed tables, models not built, stored offsets
older than the topic keeps).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TypeVar

try:
    import psycopg2
    import psycopg2.extensions

    from stream import incremental, warehouse
    from stream.broker import BrokerError, Delivery
    from stream.feed import FeedBroker, connect_feed
    from stream.kafka_broker import KafkaBroker, KafkaBrokerError, KafkaDelivery, OffsetsBehindRetention
    from stream.settings import SettingsError, add_broker_arguments, settings_from_arguments
    from warehouse_connection.connect import connect as connect_to_warehouse
except ModuleNotFoundError as missing:  # run by an interpreter without the project's packages
    sys.exit(
        f"consume.py: the Python package '{missing.name}' is not installed for {sys.executable}. "
        "Run `make venv`, then use .venv/bin/python."
    )

log = logging.getLogger("stream.consume")

T = TypeVar("T")
# What a lost or refused database connection raises; anything else is a bug, and stops us.
DATABASE_UNAVAILABLE = (psycopg2.OperationalError, psycopg2.InterfaceError)
FIRST_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 5.0
PROGRESS_EVERY_S = 10.0


class WaitForDatabase(Exception):
    """The database was unavailable for one try; the caller waits, then tries again."""


def next_retry_delay(delay: float) -> float:
    """Waits between tries double, up to MAX_RETRY_DELAY_S."""
    return min(delay * 2, MAX_RETRY_DELAY_S)


class WarehouseConnection:
    """One connection, opened on demand and opened again after the database went away."""

    def __init__(self) -> None:
        self._conn: psycopg2.extensions.connection | None = None

    def get(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect_to_warehouse("stock_analytics consumer", connect_timeout=5)
        return self._conn

    def reset(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self._conn.close()
        self._conn = None


class Consumer:
    def __init__(self, broker: FeedBroker, stream_key: str, options: argparse.Namespace) -> None:
        self.broker = broker
        # Kafka's batches are written a partition at a time, each behind its partition's fence.
        self.kafka = broker if isinstance(broker, KafkaBroker) else None
        self.stream_key = stream_key  # what the ledger calls the stream (Broker.stream_key)
        self.options = options
        self.name = f"{socket.gethostname()}:{os.getpid()}"  # who moved a partition's offset
        self.database = WarehouseConnection()
        self.stopping = False
        # symbols written since the last step, by partition (None: JetStream's one stream)
        self.touched: dict[int | None, set[str]] = {}
        self.step_pending = True  # catch up on loads a crash left unapplied
        self.catch_up = self.kafka is not None  # and on changes it left between the step's models
        self._waiting: list[int] = []  # partitions whose step another consumer still runs
        self.marts_pending = False
        self.last_step = 0.0
        self.totals = warehouse.BatchResult()
        self._window = warehouse.BatchResult()
        self._window_started = time.monotonic()

    async def run(self) -> int:
        await self.with_database("checking the warehouse", self._check)
        last_message = time.monotonic()
        last_marts = time.monotonic()
        while not self.stopping:
            batch = await self.collect()
            if self.catch_up:
                # Before this consumer writes: cheap while nothing is in flight (a group that
                # starts together), and its own steps then stay scoped.
                await self.with_database("catching up on the partitions taken over", self._catch_up)
            if batch:
                last_message = time.monotonic()
                units = self._units(batch)
                for unit in units:
                    result = await self.with_database("writing a batch", self._write, unit)
                    self._count(result)
                    partition = unit[0].partition if self.kafka is not None else None
                    self.touched.setdefault(partition, set()).update(result.symbols)
                    self.step_pending = self.step_pending or result.load_id is not None
                log.debug(
                    "wrote %d messages in %d transactions in %.0f ms",
                    len(batch),
                    len(units),
                    (time.monotonic() - last_message) * 1000,
                )
                # Only now: what is acknowledged is committed (a crash before this line gets the
                # batch again, and the ledger skips what the commit already holds).
                await self.broker.ack(batch)
            # Catching up (full batches), the step runs at most every --apply-every seconds: its
            # cost is per symbol, so fewer, larger steps drain faster; once the stream is
            # drained, after every batch.
            catching_up = len(batch) >= self.options.batch_size
            step_due = not catching_up or time.monotonic() - self.last_step >= self.options.apply_every
            if self.step_pending and step_due:
                await self.with_database("running the incremental step", self._apply)
                self.last_step = time.monotonic()
            every = self.options.marts_every
            marts_due = every > 0 and time.monotonic() - last_marts >= every
            if self.marts_pending and (marts_due or not batch):
                await self.with_database("applying the period marts", incremental.apply_period_marts)
                self.marts_pending = False
                last_marts = time.monotonic()
            self._log_progress()
            if not getattr(self.broker, "ready", True):
                last_message = time.monotonic()  # still joining the consumer group
            idle_for = time.monotonic() - last_message
            idle_limit = self.options.exit_when_idle
            if idle_limit is not None and not batch and idle_for >= idle_limit:
                log.info("stream drained and idle for %.1f s: stopping", idle_for)
                break
        self.database.reset()
        return 2 if self.totals.rejected else 0

    def _units(self, batch: list[Delivery] | list[KafkaDelivery]) -> list[list]:
        """What is written in one transaction: the batch (JetStream), or each partition's part of
        it (Kafka: each moves its own offset behind its own fence)."""
        if self.kafka is None:
            return [batch]
        by_partition: dict[int, list[KafkaDelivery]] = {}
        for delivery in batch:
            by_partition.setdefault(delivery.partition, []).append(delivery)  # type: ignore[union-attr]
        return [by_partition[partition] for partition in sorted(by_partition)]

    def _partition_stream(self, partition: int) -> str:
        """A Kafka partition's feed in the warehouse's ledger: `bars@<topic id>/<partition>`."""
        return f"{self.stream_key}/{partition}"

    def _write(
        self, conn: psycopg2.extensions.connection, unit: list[Delivery] | list[KafkaDelivery]
    ) -> warehouse.BatchResult:
        if self.kafka is None:
            return warehouse.write_batch(conn, self.stream_key, unit)
        partition = unit[0].partition  # type: ignore[union-attr]
        start = self.kafka.positions.get(partition)
        if start is None:
            log.warning(
                "partition %d was taken from this consumer by a rebalance before its batch was written: "
                "%d messages dropped here, the partition's new owner reads them",
                partition,
                len(unit),
            )
            return warehouse.BatchResult()
        deliveries = [delivery for delivery in unit if delivery.stream_sequence >= start]
        if not deliveries:
            return warehouse.BatchResult()
        fence = warehouse.PartitionFence(
            self.stream_key, partition, start, deliveries[-1].stream_sequence + 1, self.name
        )
        try:
            result = warehouse.write_batch(
                conn, self._partition_stream(partition), deliveries, fence=fence, scheme="kafka"
            )
        except warehouse.Fenced as fenced:
            # Also what a retry finds when the database committed the first try but the answer
            # was lost: the stored offset is then this batch's end, and nothing is lost either way.
            if fenced.stored == fence.next_offset:
                log.info(
                    "partition %d: this batch is in the warehouse already (an earlier try committed)",
                    partition,
                )
            else:
                log.warning("%s", fenced)
            self.step_pending = True
            if fenced.stored is not None:
                self.kafka.seek(partition, fenced.stored)  # still ours: go on where it stands
            return warehouse.BatchResult()
        self.kafka.positions[partition] = fence.next_offset
        return result

    def stored_offsets(self, first_kept: dict[int, int]) -> dict[int, int]:
        """The warehouse's next offset of newly assigned partitions (called by the Kafka client
        inside a fetch, so it waits for an unavailable database without the event loop)."""
        # a partition taken over may hold what its last owner's crash left unapplied
        self.step_pending = self.catch_up = True
        delay = FIRST_RETRY_DELAY_S
        while True:
            try:
                return self._attempt("reading stored offsets", delay, self._stored_offsets, first_kept)
            except WaitForDatabase:
                time.sleep(delay)
                delay = next_retry_delay(delay)

    def _stored_offsets(
        self, conn: psycopg2.extensions.connection, first_kept: dict[int, int]
    ) -> dict[int, int]:
        return warehouse.stored_offsets(
            conn, self.stream_key, first_kept, self.name, skip_to_retained=self.options.skip_to_retained
        )

    async def collect(self) -> list[Delivery]:
        """Up to --batch-size messages, waiting at most --max-wait seconds in all and at most
        --linger seconds once the first is in: what queued during the last step is applied at
        once, not after the whole wait (which only a quiet stream then pays)."""
        deadline = time.monotonic() + self.options.max_wait
        batch: list[Delivery] = []
        while not self.stopping and len(batch) < self.options.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # In slices of --linger: a fetch returns early only when full.
            fetched = await self.broker.fetch(
                self.options.batch_size - len(batch), timeout_s=min(remaining, self.options.linger)
            )
            if fetched and not batch:
                deadline = min(deadline, time.monotonic() + self.options.linger)
            batch += fetched
        return batch

    async def with_database(self, what: str, work: Callable[..., T], *args: object) -> T:
        """Run `work(connection, *args)`; while the database is unavailable, wait and retry.
        Safe because each unit is one transaction that either committed or left nothing."""
        delay = FIRST_RETRY_DELAY_S
        while True:
            try:
                return self._attempt(what, delay, work, *args)
            except WaitForDatabase:
                await asyncio.sleep(delay)
                delay = next_retry_delay(delay)

    def _attempt(self, what: str, delay: float, work: Callable[..., T], *args: object) -> T:
        """`work(connection, *args)`; when the database is unavailable, the connection is dropped,
        the wait of `delay` seconds logged, and WaitForDatabase raised."""
        try:
            return work(self.database.get(), *args)
        except DATABASE_UNAVAILABLE as exc:
            self.database.reset()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("database unavailable while %s (%s): retrying in %.1f s", what, reason, delay)
            raise WaitForDatabase from exc

    def _check(self, conn: psycopg2.extensions.connection) -> None:
        warehouse.check_schema(conn)
        incremental.check_functions(conn)

    def _apply(self, conn: psycopg2.extensions.connection) -> None:
        # Kafka partitions this step applied, and those whose previous owner's step still runs
        # (their touched symbols wait for the next step).
        started = time.monotonic()
        partitions: list[int] = []
        waiting: list[int] = []
        if self.kafka is None:
            step = incremental.apply_changes(conn, sorted(self.touched.get(None, ())))
        else:
            # Scoped to the partitions this consumer holds: their pending loads and symbols, so
            # the group's consumers run their steps side by side.
            paths = {
                warehouse.feed_path(self._partition_stream(number), "kafka"): number
                for number in sorted(self.kafka.positions)
            }
            with incremental.partition_locks(conn, list(paths)) as locked:
                partitions = [paths[path] for path in locked]
                symbols = sorted(set().union(*(self.touched.get(number, set()) for number in partitions)))
                step = incremental.apply_changes(conn, symbols, feed_paths=locked)
            waiting = sorted(number for path, number in paths.items() if path not in locked)
            if waiting != self._waiting:
                self._waiting = waiting
                if waiting:
                    # their previous owner (stalled, or finishing a step) still holds them
                    log.info("partitions %s: the previous owner's step still runs; applied after it", waiting)
        log.debug(
            "incremental step: %d loads, %d staging rows, %d symbols, %d trading-day rows in %.0f ms",
            step.loads_applied,
            step.staging_rows,
            step.symbols_changed,
            step.trading_day_rows,
            (time.monotonic() - started) * 1000,
        )
        if waiting:
            for number in partitions:
                self.touched.pop(number, None)
        else:
            self.touched.clear()
        self.step_pending = bool(waiting)
        self.marts_pending = self.marts_pending or step.trading_day_rows > 0

    def _catch_up(self, conn: psycopg2.extensions.connection) -> None:
        changed = incremental.apply_pending(conn)
        if changed:
            log.info("caught up: %d symbols' changes a previous owner left pending applied", changed)
        self.catch_up = False
        self.marts_pending = self.marts_pending or changed > 0

    def _count(self, result: warehouse.BatchResult) -> None:
        for totals in (self.totals, self._window):
            totals.received += result.received
            totals.already_taken += result.already_taken
            totals.applied += result.applied
            totals.stale += result.stale
            totals.rejected += result.rejected
        if result.rejected:
            log.warning(
                "%d messages rejected (load %s): see raw.load_rejects", result.rejected, result.load_id
            )

    def _log_progress(self) -> None:
        elapsed = time.monotonic() - self._window_started
        if elapsed < PROGRESS_EVERY_S:
            return
        window = self._window
        if window.received:
            log.info(
                "%.0f messages/s: %d applied, %d stale revisions, %d rejected, %d already taken",
                window.received / elapsed,
                window.applied,
                window.stale,
                window.rejected,
                window.already_taken,
            )
        self._window = warehouse.BatchResult()
        self._window_started = time.monotonic()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="consume.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_broker_arguments(parser)
    parser.add_argument(
        "--skip-to-retained",
        action="store_true",
        help="Kafka: where the stored offset of a partition is older than the topic keeps (down past "
        "the retention), go on from the first kept message; load the missing days from files first",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="stop once the stream is drained and no message came for this long (scripts, tests)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=20000, help="messages per micro-batch at most (20000)"
    )
    parser.add_argument(
        "--max-wait", type=float, default=0.25, help="seconds a micro-batch waits to fill up at most (0.25)"
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.02,
        metavar="SECONDS",
        help="seconds a micro-batch waits for more once its first message is in, at most (0.02)",
    )
    parser.add_argument(
        "--apply-every",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="while catching up (full batches), run the incremental step at most this often (1.0)",
    )
    parser.add_argument(
        "--marts-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="bring the period marts that are tables up to date this often, and when idle "
        "(60; 0: only when idle)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every batch's incremental step")
    options = parser.parse_args(argv)
    if options.batch_size < 1 or options.max_wait <= 0 or options.linger <= 0:
        parser.error("--batch-size must be at least 1, --max-wait and --linger above 0")
    return options


async def consume(options: argparse.Namespace) -> int:
    broker = await connect_feed(settings_from_arguments(options))
    try:
        await broker.ensure_stream()
        consumer = Consumer(broker, await broker.stream_key(), options)
        if isinstance(broker, KafkaBroker):
            broker.subscribe(consumer.stored_offsets)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: setattr(consumer, "stopping", True))
        code = await consumer.run()
        totals = consumer.totals
        print(
            f"consumed {totals.received} messages: {totals.applied} bars applied, {totals.stale} stale "
            f"revisions, {totals.rejected} rejected, {totals.already_taken} already taken"
        )
        return code
    finally:
        await broker.close()


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if options.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(consume(options))
    except (
        SettingsError,
        BrokerError,
        KafkaBrokerError,
        OffsetsBehindRetention,
        warehouse.FeedSchemaMissing,
        incremental.IncrementalStepMissing,
    ) as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
