"""Live feed benchmark: drain rate, a live feed's lag, publish-to-visible freshness.

    eval "$(make -s env)"                                # the server: whatever PG* points at
    python bench/bench_stream.py                         # every step on both brokers, ~50 min on 2 cores
    python bench/bench_stream.py --steps drain --batch-sizes 5000
    python bench/bench_stream.py --steps live --live-seconds 60 --keep

Every run builds throwaway databases (devtools/databases.py create_database: the loader, `dbt build`)
and a throwaway broker: a nats-server -js per measurement (devtools/nats.py NatsServer) and one
Kafka node for the run (devtools/kafka.py KafkaCluster, the project's script) with a topic per
measurement; each step runs on each broker of --brokers (Kafka and JetStream side by side).
It runs the real CLIs as subprocesses: stream/consume.py as the `streamer` role,
stream/publish.py. The publisher, the broker, the consumers and PostgreSQL share
the machine's cores; the CPU each used is read from /proc and reported.

Steps (--steps picks any):
  drain      pre-fill a stream (the publisher's replay / random-walk API, not timed), then time
             the consumer draining it: from the consumer's "ready" log line until the warehouse
             holds the stream's last message (JetStream: its last sequence; Kafka: every
             partition's end offset), staging has applied every feed load and the trading
             days' watermark has reached staging's last change. Each broker of --brokers (Kafka
             and JetStream side by side), on Kafka with each count of --consumers in the group
             (started together; the clock starts at the first one's assignment). Shapes: backfill (--backfill,
             the bundled sample, replayed into a database without those symbols), many symbols
             (--random-symbols x --random-days, one revision), both at each --batch-sizes; and
             the backfill replayed over the same history already loaded, at the first batch size.
             The file path for the same bars beside it: the loader, then the same two apply
             functions the consumer runs (what `dbt build` runs, without dbt's start-up).
  breakdown  the same bars through stream/warehouse.write_batch and the two apply functions
             in-process, each call timed: where a batch's time goes.
  live       a publisher at --live-rate over --live-symbols (each symbol's bar of the day revised
             once a second) for --live-seconds with one consumer running; every --sample-every s
             the lag (the messages the broker holds - those the warehouse took: JetStream's last
             sequence against the highest in raw.feed_messages, Kafka's end offsets against the
             stored next offsets; and the age of the newest message taken); min/median/p95/max
             and its trend.
  freshness  a background publisher at --fresh-rate bars/s while the bench publishes --probes
             probe bars (--probe-rate a second, a new revision with a unique close each) for a
             few symbols with history and polls marts.fct_daily_moving_averages as `reader`
             until each probe's close shows: publish-to-visible p50/p95/max.

Databases: the sample with history is the loader's run of data/sample and `dbt build`; "seed" is
one unrelated symbol (A.csv loaded as BENCHSEED) so that the sample's symbols arrive new.

Targets: into raw, staging and the running sums, one consumer drains at >= 0.6x the file
path's rate on the same bars (else >= 20,000 bars/s), two consumers of a group faster than one;
the live feed keeps up (lag bounded); freshness p95 <= 1 s at 1,000 bars/s. A missed target is reported, not a
failure. Writes bench/results/stream_<timestamp>.json; prints the results table.
Exit code 0 when every selected step ran, 1 when one failed (a CLI's error, a timeout), 2 on
bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm import tqdm

from devtools.databases import Database, create_database, drop_database
from devtools.kafka import KafkaCluster
from devtools.nats import NatsServer
from devtools.project import SAMPLE_DIR
from devtools.stats import percentile
from stream import incremental, warehouse
from stream.broker import Delivery, connect
from stream.feed import connect_feed
from stream.messages import BadMessage, Bar, decode_bar, encode_bar, message_id, subject_for
from stream.publish import random_walk_messages, replay_messages, send
from stream.settings import BrokerSettings, KafkaSettings

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

log = logging.getLogger("bench_stream")

RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = RESULTS_DIR / "stream-work"  # dbt's target/ and logs/, the CLIs' logs
CONSUMER = PROJECT_DIR / "stream" / "consume.py"
PUBLISHER = PROJECT_DIR / "stream" / "publish.py"
STEPS = ("drain", "breakdown", "live", "freshness")
DRAIN_TARGET = 20_000.0  # bars/s, where no file path was measured on the same bars
DRAIN_VS_FILES = 0.6  # one consumer's rate against the file path's on the same bars
FRESHNESS_TARGET_S = 1.0  # p95
SEED_SYMBOL = "BENCHSEED"
STREAM = "BARS"
TRADING_DAYS = "intermediate.int_daily_prices__trading_days"
# The consumer's log: "2026-11-22 10:53:37,340 INFO stream.broker: created durable consumer ..."
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
PUBLISHED_LINE = re.compile(r"published ([\d,]+) bars in ([\d.]+) s")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05
DRAIN_TIMEOUT_S = 3600.0
PROBE_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 60.0


class StepFailed(Exception):
    """A measurement could not run; the message says which and why."""


# ---- processes and CPU --------------------------------------------------------------------
def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def postgres_cpu_seconds() -> float:
    """CPU seconds of every postgres process on the machine (other databases' work included)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


class CpuMeter:
    """CPU used by named processes (and all of PostgreSQL, and the machine) over a window."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self._start: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._started = 0.0

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self._start[name] = self._last[name] = cpu_seconds(pid) or 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        for name, pid in self.pids.items():
            self._start[name] = self._last[name] = cpu_seconds(pid) or 0.0
        self._pg = postgres_cpu_seconds()
        self._machine = machine_busy_seconds()

    def sample(self) -> None:
        """Remember each process's latest figure (a process that exits keeps its last one)."""
        for name, pid in self.pids.items():
            value = cpu_seconds(pid)
            if value is not None:
                self._last[name] = value

    def result(self) -> dict[str, Any]:
        """Per process: CPU seconds and the share of one core over the window."""
        self.sample()
        wall = max(time.monotonic() - self._started, 1e-9)
        out: dict[str, Any] = {"wall_s": round(wall, 2)}
        for name in self.pids:
            used = self._last[name] - self._start[name]
            out[name] = {"cpu_s": round(used, 2), "cores": round(used / wall, 2)}
        used = postgres_cpu_seconds() - self._pg
        out["postgres (all)"] = {"cpu_s": round(used, 2), "cores": round(used / wall, 2)}
        busy, total = machine_busy_seconds()
        share = (busy - self._machine[0]) / max(total - self._machine[1], 1e-9)
        out["machine_busy"] = round(share, 3)
        return out


@dataclass
class Cli:
    """A CLI run as a subprocess, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (the consumer finishes its batch), then wait; kill -9 after `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def failure(self) -> str:
        return f"{self.name} exited with {self.process.returncode}; its log ends:\n{self.text()[-3000:]}"


def start_cli(name: str, command: list[str], env: dict[str, str], log_path: Path) -> Cli:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Cli(name, process, log_path, time.monotonic())


def broker_env(db: Database | None, url: str) -> dict[str, str]:
    env = dict(db.role_env("streamer")) if db is not None else dict(os.environ)
    env |= {
        "STOCK_ANALYTICS_BROKER": "nats",
        "STOCK_ANALYTICS_NATS_URL": url,
        "STOCK_ANALYTICS_NATS_STREAM": STREAM,
        "PYTHONUNBUFFERED": "1",
    }
    return env


def start_consumer(
    args: argparse.Namespace,
    db: Database,
    url: str,
    batch_size: int,
    log_path: Path,
    *,
    idle: float | None,
    env: dict[str, str] | None = None,
) -> Cli:
    """The consumer as `streamer`, on the NATS server at `url`, or on the broker `env` names."""
    command = [
        sys.executable,
        str(args.consumer),
        "--batch-size",
        str(batch_size),
        "--max-wait",
        str(args.max_wait),
        "--linger",
        str(args.linger),
    ]
    command += ["-v"] + (["--exit-when-idle", str(idle)] if idle is not None else [])
    return start_cli("consumer", command, env or broker_env(db, url), log_path)


def log_times(text: str, pattern: re.Pattern[str]) -> list[datetime.datetime]:
    """The timestamps (local time, as logging writes them) of the log lines matching pattern."""
    times = []
    for line in text.splitlines():
        match = LOG_TIME.match(line)
        if match and pattern.search(line):
            times.append(datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return times


# ---- databases ------------------------------------------------------------------------------
def checked(proc: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if proc.returncode != 0:
        raise StepFailed(f"{what} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def build_database(args: argparse.Namespace, kind: str) -> Database:
    """A throwaway database: 'history' (the sample loaded) or 'seed' (one unrelated symbol)."""
    started = time.monotonic()
    db = create_database(WORK_DIR / f"{kind}-{int(time.time() * 1000)}", prefix="bench_stream")
    try:
        if kind == "history":
            checked(db.run_loader(SAMPLE_DIR), "the loader (sample)")
        else:
            checked(
                db.run_loader("--symbol", SEED_SYMBOL, SAMPLE_DIR / "stocks" / "A.csv"), "the loader (seed)"
            )
        checked(db.dbt("build"), "dbt build")
        if args.patch_sql:
            conn = db.connect("transformer")
            try:
                with conn.cursor() as cur:
                    cur.execute(args.patch_sql.read_text().replace("{database}", db.name))
            finally:
                conn.close()
    except BaseException:
        drop_database(db)
        raise
    log.info("database %s (%s) ready in %.0f s", db.name, kind, time.monotonic() - started)
    return db


class Databases:
    """Every database the run made, dropped at the end unless --keep."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.made: list[Database] = []

    def new(self, kind: str) -> Database:
        db = build_database(self.args, kind)
        self.made.append(db)
        return db

    def done(self, db: Database) -> None:
        if not self.args.keep:
            drop_database(db)
            self.made.remove(db)

    def close(self) -> None:
        for db in list(self.made):
            if self.args.keep:
                log.info("kept database %s", db.name)
            else:
                drop_database(db)


# ---- the feed's messages ----------------------------------------------------------------------
@dataclass
class Shape:
    name: str
    kind: str  # the database it is drained into
    description: str

    def items(self, args: argparse.Namespace) -> Iterator[tuple[str, bytes, str]]:
        if self.name.startswith("backfill"):
            _, items, _, _ = replay_messages(args.backfill)
            return items
        return random_walk_messages(args.random_symbols, seed=1, days=args.random_days, revisions=1)


def shapes(args: argparse.Namespace) -> list[Shape]:
    replay = f"--replay {args.backfill}"
    return [
        Shape("backfill", "seed", f"{replay}, symbols new to the warehouse"),
        Shape(
            "many symbols",
            "history",
            f"--random {args.random_symbols} x {args.random_days} days x 1 revision",
        ),
        Shape("backfill over history", "history", f"{replay} over the same bars already loaded"),
    ]


async def _prefill(settings: BrokerSettings | KafkaSettings, items: Iterable[tuple[str, bytes, str]]) -> int:
    """Publish every item (the stream or topic created if missing); returns how many."""
    broker = await connect_feed(settings)
    try:
        await broker.ensure_stream()
        sent, _ = await send(broker, items)
        return sent
    finally:
        await broker.close()


def feed_state(settings: BrokerSettings | KafkaSettings) -> tuple[int, int | None]:
    """(what the feed holds: JetStream's last sequence, Kafka's end offsets summed; what the
    consumer has not had acknowledged: JetStream's durable's count, None on Kafka)."""

    async def run() -> tuple[int, int | None]:
        broker = await connect_feed(settings)
        try:
            return await broker.stream_state()
        finally:
            await broker.close()

    return asyncio.run(run())


async def _consume_and_decode(broker: Any, total: int, batch_size: int) -> float:
    """Fetch `total` messages in batches, decode each as the consumer does, acknowledge each
    batch; no database. Returns the seconds it took from the first message."""
    taken, started = 0, None
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while taken < total:
        if time.monotonic() > deadline:
            raise StepFailed(f"the decode ceiling got {taken:,} of {total:,} messages")
        batch = await broker.fetch(batch_size, timeout_s=0.25)
        if batch and started is None:
            started = time.monotonic()
        for delivery in batch:
            with contextlib.suppress(BadMessage):
                decode_bar(delivery.data)
        await broker.ack(batch)
        taken += len(batch)
    return time.monotonic() - (started or time.monotonic())


class NatsFeed:
    """A throwaway JetStream server with the bench's stream."""

    name = "nats"
    # The consumer's first line once it can fetch.
    ready_line = re.compile(r"created durable consumer")
    # How far the warehouse got: sequences count from 1 in the bench's one stream.
    taken_sql = "select coalesce(max(stream_sequence), 0) from raw.feed_messages"

    def __init__(self) -> None:
        self.server = NatsServer()
        self.settings = BrokerSettings(url=self.server.url, stream=STREAM)

    def prefill(self, items: Iterable[tuple[str, bytes, str]]) -> int:
        """Publish (not timed); returns the stream's last sequence."""
        asyncio.run(_prefill(self.settings, items))
        last_seq, _ = feed_state(self.settings)
        return last_seq

    def consume_and_decode(self, total: int, batch_size: int) -> float:
        """The ceiling with no database: seconds to fetch, decode and acknowledge every message
        (a durable of its own, so the consumer's still finds every message waiting)."""

        async def run() -> float:
            broker = await connect(BrokerSettings(url=self.server.url, stream=STREAM, durable="ceiling"))
            try:
                return await _consume_and_decode(broker, total, batch_size)
            finally:
                await broker.close()

        return asyncio.run(run())

    def consumer_env(self, db: Database) -> dict[str, str]:
        return broker_env(db, self.server.url)

    def publisher_env(self) -> dict[str, str]:
        return broker_env(None, self.server.url)

    def processes(self) -> dict[str, int]:
        return {"nats-server": self.server._process.pid}

    def cleanup(self) -> None:
        self.server.cleanup()


class KafkaFeed:
    """A topic of its own on the run's one-node Kafka cluster (12 partitions, as `bars`)."""

    name = "kafka"
    ready_line = re.compile(r"assigned partitions")
    # How far the warehouse got: the sum of the partitions' stored next offsets (each counts from 0).
    taken_sql = "select coalesce(sum(next_offset), 0)::bigint from raw.feed_offsets"

    def __init__(self, label: str, cluster: KafkaCluster) -> None:
        self.cluster = cluster
        topic = re.sub(r"[^A-Za-z0-9._-]", "_", f"bench-{label}-{time.time_ns()}")  # what Kafka allows
        self.settings = KafkaSettings(bootstrap=cluster.bootstrap, topic=topic)

    def prefill(self, items: Iterable[tuple[str, bytes, str]]) -> int:
        """Publish (not timed); returns how many the topic holds (its offsets' sum)."""
        return asyncio.run(_prefill(self.settings, items))

    def consume_and_decode(self, total: int, batch_size: int) -> float:
        """The ceiling with no database: seconds to fetch and decode every message (a group of
        its own from each partition's start, so the consumer's group is left as it was)."""

        async def run() -> float:
            broker = await connect_feed(replace(self.settings, group="bench-ceiling"))
            try:
                broker.subscribe(dict)  # every partition from its first kept offset
                return await _consume_and_decode(broker, total, batch_size)
            finally:
                await broker.close()

        return asyncio.run(run())

    def consumer_env(self, db: Database) -> dict[str, str]:
        return dict(db.role_env("streamer")) | self._broker_env()

    def publisher_env(self) -> dict[str, str]:
        return dict(os.environ) | self._broker_env()

    def _broker_env(self) -> dict[str, str]:
        return {
            "STOCK_ANALYTICS_BROKER": "kafka",
            "STOCK_ANALYTICS_KAFKA_BOOTSTRAP": self.settings.bootstrap,
            "STOCK_ANALYTICS_KAFKA_TOPIC": self.settings.topic,
            "PYTHONUNBUFFERED": "1",
        }

    def processes(self) -> dict[str, int]:
        return {"kafka": self.cluster.pid(1)}

    def cleanup(self) -> None:
        pass  # the cluster is the run's; the topic goes with it


Feed = NatsFeed | KafkaFeed


class Feeds:
    """The run's brokers: a NATS server per feed, one Kafka node for the whole run (a topic per
    feed), started when first needed."""

    def __init__(self) -> None:
        self.cluster: KafkaCluster | None = None

    def new(self, broker: str, label: str) -> Feed:
        if broker == "nats":
            return NatsFeed()
        if self.cluster is None:
            self.cluster = KafkaCluster(nodes=1)
        return KafkaFeed(label, self.cluster)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.cleanup()


def start_feed_consumer(args: argparse.Namespace, db: Database, feed: Feed, log_name: str) -> Cli:
    """A consumer of `feed` that runs until stopped (--batch-size, --max-wait, --linger)."""
    return start_consumer(
        args, db, "", args.batch_size, WORK_DIR / log_name, idle=None, env=feed.consumer_env(db)
    )


def start_random_publisher(feed: Feed, symbols: int, rate: float, seconds: float, log_name: str) -> Cli:
    """The publisher's random walk of `symbols`, each one's bar of the day revised in turn, at
    `rate` bars/s for `seconds` (enough revisions that it never runs out)."""
    revisions = math.ceil(seconds * rate / symbols) + 10
    command = [sys.executable, str(PUBLISHER), "--random", str(symbols), "--rate", str(rate)]
    command += ["--days", "1", "--revisions", str(revisions), "--duration", str(seconds)]
    return start_cli("publisher", command, feed.publisher_env(), WORK_DIR / log_name)


def wait_ready(consumer: Cli, feed: Feed) -> None:
    """Until the consumer logs that it can fetch (JetStream: its durable; Kafka: its partitions)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not feed.ready_line.search(consumer.text()):
        if consumer.process.poll() is not None:
            raise StepFailed(consumer.failure())
        if time.monotonic() > deadline:
            raise StepFailed(
                f"the consumer was not ready within {READY_TIMEOUT_S:.0f} s: {consumer.failure()}"
            )
        time.sleep(0.1)


# ---- drain ------------------------------------------------------------------------------------
def done_sql(taken_sql: str) -> str:
    """(taken, feed loads not staged, trading-day changes not applied), for the broker's taken_sql."""
    return f"""
select
    ({taken_sql}),
    (select count(*) from raw.load_log as load_log
     where load_log.file_kind = 'feed' and load_log.status = 'loaded'
         and not exists (select from staging.stg_market_data__applied_loads as applied
                         where applied.load_id = load_log.load_id)),
    (select count(*) from staging.stg_market_data__daily_prices__changes as changes
     where changes.change_id > coalesce(
             (select change_id from staging.incremental_watermarks where consumer = '{TRADING_DAYS}'), 0)
         -- a consumer's scoped step takes changes without moving the watermark
         and not exists (select from staging.incremental_taken as taken
                         where taken.consumer = '{TRADING_DAYS}' and taken.change_id = changes.change_id))
"""


def wait_until_applied(db: Database, last_seq: int, consumers: list[Cli], taken_sql: str) -> float:
    """Poll (as transformer) until every message is taken and both steps applied; returns the
    time.time() it was first seen so."""
    conn = db.connect("transformer")
    bar = tqdm(total=last_seq, unit="bar", unit_scale=True, desc="drain", disable=not sys.stderr.isatty())
    query = done_sql(taken_sql)
    try:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        exited = 0.0
        while True:
            with conn.cursor() as cur:
                cur.execute(query)
                taken, pending_loads, change_lag = cur.fetchone()
            bar.update(taken - bar.n)
            if taken >= last_seq and pending_loads == 0 and change_lag <= 0:
                return time.time()
            for consumer in consumers:
                if consumer.process.poll() is not None and consumer.process.returncode not in (0, 2):
                    raise StepFailed(consumer.failure())
            if all(consumer.process.poll() is not None for consumer in consumers):
                exited = exited or time.monotonic()
                if time.monotonic() - exited > 10:
                    raise StepFailed(
                        f"the consumers stopped with {taken:,} of {last_seq:,} messages taken, "
                        f"{pending_loads} loads not staged, {change_lag} changes not applied"
                    )
            if time.monotonic() > deadline:
                raise StepFailed(f"the drain did not finish in {DRAIN_TIMEOUT_S:.0f} s")
            time.sleep(POLL_S)
    finally:
        bar.close()
        conn.close()


def consumer_backend_pids(db: Database) -> list[int]:
    """The consumers' PostgreSQL backends (by their application_name)."""
    rows = db.query(
        "select pid from pg_stat_activity where datname = %s and application_name = %s order by pid",
        (db.name, "stock_analytics consumer"),
    )
    return [pid for (pid,) in rows]


class GroupWatch(threading.Thread):
    """Notes when every consumer has logged its first assignment, and how many bars were taken
    by then."""

    def __init__(
        self, db: Database, consumers: list[Cli], ready_line: re.Pattern[str], taken_sql: str
    ) -> None:
        super().__init__(daemon=True)
        self.db, self.consumers, self.ready_line, self.taken_sql = db, consumers, ready_line, taken_sql
        self.stop = threading.Event()
        self.at: float | None = None
        self.taken = 0

    def run(self) -> None:
        while not self.stop.is_set():
            if all(log_times(consumer.text(), self.ready_line) for consumer in self.consumers):
                at = time.time()
                conn = self.db.connect("transformer")  # a connection of this thread's own
                try:
                    with conn.cursor() as cur:
                        cur.execute(self.taken_sql)
                        self.taken = int(cur.fetchone()[0])
                finally:
                    conn.close()
                self.at = at
                return
            time.sleep(0.05)


def drain_once(
    args: argparse.Namespace,
    dbs: Databases,
    shape: Shape,
    batch_size: int,
    *,
    feed: Feed,
    consumers: int = 1,
) -> dict[str, Any]:
    """The consumers (started together, each exiting once idle) drain the pre-filled feed; the
    clock runs from the first consumer's ready line until everything is applied."""
    db = dbs.new(shape.kind)
    try:
        last_seq = feed.prefill(shape.items(args))
        decode_s = feed.consume_and_decode(last_seq, batch_size)
        label = f"{feed.name}-{shape.name.replace(' ', '_')}-{batch_size}-x{consumers}"
        cpu = CpuMeter()
        for name, pid in feed.processes().items():
            cpu.watch(name, pid)
        started = [
            start_consumer(
                args,
                db,
                "",
                batch_size,
                WORK_DIR / f"consumer-drain-{label}-{n}.log",
                idle=1.0,
                env=feed.consumer_env(db),
            )
            for n in range(1, consumers + 1)
        ]
        for n, consumer in enumerate(started, start=1):
            cpu.watch(f"consumer {n}", consumer.process.pid)
        cpu.start()
        launched = time.time()
        done_at = None
        group = GroupWatch(db, started, feed.ready_line, feed.taken_sql)
        if consumers > 1:
            group.start()
        try:
            backends: list[int] = []
            while len(backends) < consumers and time.time() - launched < 30:
                if any(consumer.process.poll() is not None for consumer in started):
                    break
                backends = consumer_backend_pids(db)
                time.sleep(0.02)
            for n, pid in enumerate(backends, start=1):
                cpu.watch(f"consumer {n}'s postgres backend", pid)
            done_at = wait_until_applied(db, last_seq, started, feed.taken_sql)
            cpu_use = cpu.result()
        finally:
            group.stop.set()
            codes = [
                consumer.process.wait(timeout=120) if done_at else consumer.stop() for consumer in started
            ]
        for consumer, code in zip(started, codes, strict=True):
            if code not in (0, 2):
                raise StepFailed(consumer.failure())
        ready = [t for consumer in started for t in log_times(consumer.text(), feed.ready_line)[:1]]
        ready_at = min(ready).timestamp() if ready else launched
        seconds = done_at - ready_at
        batches, write_s = db.query(
            "select count(*), coalesce(sum(extract(epoch from finished_at - started_at)), 0) "
            "from raw.load_log where file_kind = 'feed'"
        )[0]
        result = {
            "broker": feed.name,
            "consumers": consumers,
            "shape": shape.name,
            "batch_size": batch_size,
            "bars": last_seq,
            "seconds": round(seconds, 2),
            "bars_per_s": round(last_seq / seconds),
            "startup_s": round(ready_at - launched, 2),
            # the ceiling with no database: the same messages fetched and decoded
            "decode_only_bars_per_s": round(last_seq / decode_s),
            "feed_loads": batches,
            "write_batch_db_s": round(float(write_s), 2),
            "cpu": cpu_use,
        }
        if group.at is not None and done_at > group.at and group.taken < last_seq:
            # The group's rate once every consumer holds partitions: the first one to join
            # drains alone until its next poll lets the others in (after its first step).
            result["group_complete_s"] = round(group.at - ready_at, 2)
            result["bars_before_group_complete"] = group.taken
            result["bars_per_s_group_complete"] = round((last_seq - group.taken) / (done_at - group.at))
        log.info(
            "drain %s on %s x%d, batch %d: %d bars in %.1f s = %.0f bars/s",
            shape.name,
            feed.name,
            consumers,
            batch_size,
            last_seq,
            seconds,
            last_seq / seconds,
        )
        return result
    finally:
        feed.cleanup()
        dbs.done(db)


def file_path_once(args: argparse.Namespace, dbs: Databases, shape: Shape) -> dict[str, Any]:
    """The same bars from files: the loader (no symbols metadata: it would rebuild everything),
    then the staging and trading days apply functions, timed together."""
    db = dbs.new(shape.kind)
    with tempfile.TemporaryDirectory(prefix="bench-stream-files-") as tmp:
        try:
            bars = 0
            for folder in ("stocks", "etfs"):
                source = Path(args.backfill) / folder
                if not source.is_dir():
                    continue
                (Path(tmp) / folder).mkdir()
                for path in sorted(source.glob("*.csv")):
                    text = path.read_bytes()
                    bars += max(sum(1 for line in text.splitlines() if line.strip()) - 1, 0)
                    if shape.kind == "history":
                        # The same rows with CRLF endings: not 'unchanged', not an append, so
                        # a merge that supersedes every date, as the feed's replay does.
                        text = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                    (Path(tmp) / folder / path.name).write_bytes(text)
            started = time.monotonic()
            checked(db.run_loader(tmp), "the loader")
            loaded = time.monotonic()
            conn = db.connect("streamer")
            try:
                staging = incremental.staging_routine(conn)
                # the trading days (the running sums), then the models they feed (the screener)
                downstream = incremental.routines(conn, "upstream_changes")
                with conn.cursor() as cur:
                    cur.execute(f"select * from {staging}()")
                    staging_rows = cur.fetchone()[2]
                    staged = time.monotonic()
                    trading_rows = 0
                    for routine in downstream:
                        cur.execute(f"select * from {routine}()")
                        trading_rows += cur.fetchone()[1]
            finally:
                conn.close()
            finished = time.monotonic()
        finally:
            dbs.done(db)
    seconds = finished - started
    return {
        "shape": shape.name,
        "bars": bars,
        "seconds": round(seconds, 2),
        "bars_per_s": round(bars / seconds),
        "loader_s": round(loaded - started, 2),
        "staging_apply_s": round(staged - loaded, 2),
        "trading_days_apply_s": round(finished - staged, 2),
        "staging_rows": staging_rows,
        "trading_day_rows": trading_rows,
    }


def broker_runs(brokers: list[str], consumer_counts: list[int]) -> Iterator[tuple[str, int]]:
    """Each broker with each count of consumers: several are a group's (Kafka's); JetStream's
    durable is taken by one."""
    for broker in brokers:
        for consumers in consumer_counts if broker == "kafka" else [1]:
            yield broker, consumers


def step_drain(args: argparse.Namespace, dbs: Databases, feeds: Feeds) -> dict[str, Any]:
    runs, files = [], []
    for shape in shapes(args):
        sizes = args.batch_sizes if shape.name != "backfill over history" else args.batch_sizes[:1]
        if shape.name == "backfill over history" and not args.over_history:
            continue
        for size in sizes:
            for broker, consumers in broker_runs(args.brokers, args.consumers):
                feed = feeds.new(broker, shape.name)
                run = drain_once(args, dbs, shape, size, feed=feed, consumers=consumers)
                runs.append(run | {"description": shape.description})
        if shape.name.startswith("backfill"):
            files.append(file_path_once(args, dbs, shape))
    for file_run in files:
        of_shape = [r for r in runs if r["shape"] == file_run["shape"]]
        for broker in args.brokers:
            best = max((r for r in of_shape if r["broker"] == broker), key=lambda r: r["bars_per_s"])
            file_run[f"{broker}_best_bars_per_s"] = best["bars_per_s"]
            file_run[f"{broker}_vs_files"] = round(best["bars_per_s"] / file_run["bars_per_s"], 2)
    best_size = {}
    for name in dict.fromkeys(r["shape"] for r in runs):
        of_shape = [r for r in runs if r["shape"] == name]
        best_size[name] = max(of_shape, key=lambda r: r["bars_per_s"])["batch_size"]
    return {"runs": runs, "file_path": files, "best_batch_size": best_size}


# ---- breakdown --------------------------------------------------------------------------------
def warehouse_module(args: argparse.Namespace) -> ModuleType:
    """stream/warehouse.py beside --consumer: the project's, or a patched copy's."""
    path = args.consumer.resolve().parent / "warehouse.py"
    if path == Path(warehouse.__file__).resolve():
        return warehouse
    spec = importlib.util.spec_from_file_location("bench_stream_patched_warehouse", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    log.info("breakdown: write_batch from %s", path)
    return module


def step_breakdown(args: argparse.Namespace, dbs: Databases, feeds: Feeds) -> dict[str, Any]:
    """Each call of one consumer batch timed, in-process, on the drain's shapes."""
    out = []
    now = datetime.datetime.now(datetime.UTC)
    for shape in shapes(args)[:2]:
        db = dbs.new(shape.kind)
        try:
            deliveries = [
                Delivery(data=payload, stream_sequence=seq, num_delivered=1, published_at=now)
                for seq, (_, payload, _) in enumerate(shape.items(args), start=1)
            ]
            conn = db.connect("streamer")
            conn.autocommit = False
            write_batch = warehouse_module(args).write_batch
            size = args.batch_size
            timings = {"write_batch": 0.0, "staging_apply": 0.0, "trading_days_apply": 0.0}
            worst = {key: 0.0 for key in timings}
            batches = 0
            staging = incremental.staging_routine(conn)
            downstream = incremental.routines(conn, "upstream_changes")
            try:
                for start in range(0, len(deliveries), size):
                    batch = deliveries[start : start + size]
                    t0 = time.perf_counter()
                    result = write_batch(conn, STREAM, batch)
                    t1 = time.perf_counter()
                    with conn, conn.cursor() as cur:
                        cur.execute(f"select * from {staging}(p_symbols => %s)", (result.symbols,))
                    t2 = time.perf_counter()
                    with conn, conn.cursor() as cur:
                        for routine in downstream:
                            cur.execute(f"select * from {routine}()")
                    t3 = time.perf_counter()
                    for key, spent in zip(timings, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                        timings[key] += spent
                        worst[key] = max(worst[key], spent)
                    batches += 1
            finally:
                conn.close()
            total = sum(timings.values())
            out.append(
                {
                    "shape": shape.name,
                    "batch_size": size,
                    "bars": len(deliveries),
                    "batches": batches,
                    "seconds": {k: round(v, 2) for k, v in timings.items()},
                    "share": {k: round(v / total, 3) for k, v in timings.items()},
                    "per_batch_ms": {k: round(1000 * v / batches, 1) for k, v in timings.items()},
                    "worst_batch_ms": {k: round(1000 * v, 1) for k, v in worst.items()},
                    "bars_per_s": round(len(deliveries) / total),
                }
            )
            log.info("breakdown %s: %s", shape.name, out[-1]["seconds"])
        finally:
            dbs.done(db)
    return {"runs": out}


def stop_feed(publisher: Cli | None, consumers: list[Cli], feed: Feed, db: Database, dbs: Databases) -> None:
    """Stop a live feed's processes, its broker and its database, whichever were started."""
    for cli in [publisher, *consumers]:
        if cli is not None:
            cli.stop()
    feed.cleanup()
    dbs.done(db)


def feed_cpu_meter(publisher: Cli, consumers: list[Cli], feed: Feed, db: Database) -> CpuMeter:
    """CPU of every process a live feed runs on: publisher, consumers, broker, the consumers'
    PostgreSQL backends."""
    cpu = CpuMeter()
    cpu.watch("publisher", publisher.process.pid)
    for n, consumer in enumerate(consumers, start=1):
        cpu.watch(f"consumer {n}", consumer.process.pid)
    for name, pid in feed.processes().items():
        cpu.watch(name, pid)
    for n, backend in enumerate(consumer_backend_pids(db)[: len(consumers)], start=1):
        cpu.watch(f"consumer {n}'s postgres backend", backend)
    return cpu


# ---- live -------------------------------------------------------------------------------------
def lag_sql(feed: Feed) -> str:
    """(how far the warehouse got, in the broker's count; the newest message's publish time)."""
    return f"select ({feed.taken_sql}), (select max(published_at) from raw.feed_messages)"


def nearest_rank(values: list[float], pct: float) -> float:
    """This benchmark's percentiles are nearest-rank ones (as its recorded figures are)."""
    return percentile(values, pct, method="nearest_rank")


def summary(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "p95": round(nearest_rank(values, 95), 3),
        "max": round(max(values), 3),
    }


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def published_rate(publisher: Cli) -> tuple[int, float]:
    match = PUBLISHED_LINE.search(publisher.text())
    if not match:
        raise StepFailed(publisher.failure())
    return int(match.group(1).replace(",", "")), float(match.group(2))


def step_live(args: argparse.Namespace, dbs: Databases, feeds: Feeds) -> dict[str, Any]:
    runs = [
        live_once(args, dbs, feeds.new(broker, "live"), consumers)
        for broker, consumers in broker_runs(args.brokers, args.live_consumers)
    ]
    return {"runs": runs}


def live_once(args: argparse.Namespace, dbs: Databases, feed: Feed, consumers: int) -> dict[str, Any]:
    db = dbs.new("history")
    started_consumers: list[Cli] = []
    publisher = None
    try:
        feed.prefill([])  # the stream exists before either side starts
        for n in range(1, consumers + 1):
            started_consumers.append(
                start_feed_consumer(args, db, feed, f"consumer-live-{feed.name}-x{consumers}-{n}.log")
            )
        for consumer in started_consumers:
            wait_ready(consumer, feed)
        publisher = start_random_publisher(
            feed,
            args.live_symbols,
            args.live_rate,
            args.live_seconds,
            f"publisher-live-{feed.name}-x{consumers}.log",
        )
        cpu = feed_cpu_meter(publisher, started_consumers, feed, db)
        cpu.start()
        samples = []
        conn = db.connect("transformer")
        started = time.monotonic()
        bar = tqdm(
            total=int(args.live_seconds), unit="s", desc=f"live {feed.name}", disable=not sys.stderr.isatty()
        )
        try:
            while publisher.process.poll() is None:
                time.sleep(args.sample_every)
                published, pending = feed_state(feed.settings)
                with conn.cursor() as cur:
                    cur.execute(lag_sql(feed))
                    taken, newest = cur.fetchone()
                now = datetime.datetime.now(datetime.UTC)
                elapsed = time.monotonic() - started
                samples.append(
                    {
                        "t_s": round(elapsed, 1),
                        "published": published,
                        "taken": taken,
                        "lag_messages": published - taken,
                        "pending": pending,
                        "lag_s": round((now - newest).total_seconds(), 3) if newest else None,
                    }
                )
                cpu.sample()
                bar.update(min(int(elapsed), bar.total) - bar.n)
                for consumer in started_consumers:
                    if consumer.process.poll() is not None:
                        raise StepFailed(consumer.failure())
        finally:
            bar.close()
            conn.close()
        cpu_use = cpu.result()
        if publisher.process.wait() != 0:
            raise StepFailed(publisher.failure())
        bars, seconds = published_rate(publisher)
    finally:
        stop_feed(publisher, started_consumers, feed, db, dbs)
    lags = [s["lag_messages"] for s in samples]
    ages = [s["lag_s"] for s in samples if s["lag_s"] is not None]
    trend = slope([(s["t_s"], s["lag_messages"]) for s in samples])
    # Kept up: over the second half (past the start, while the backlog fills the batches) the
    # lag does not grow by more than 2% of the feed's rate.
    settled = slope([(s["t_s"], s["lag_messages"]) for s in samples[len(samples) // 2 :]])
    keeps_up = len(samples) >= 4 and settled < 0.02 * args.live_rate
    log.info(
        "live on %s x%d: lag p95 %s messages, keeps up: %s",
        feed.name,
        consumers,
        summary(lags).get("p95"),
        keeps_up,
    )
    return {
        "broker": feed.name,
        "consumers": consumers,
        "symbols": args.live_symbols,
        "target_rate": args.live_rate,
        "published": bars,
        "publish_seconds": seconds,
        "achieved_rate": round(bars / seconds) if seconds else 0,
        "batch_size": args.batch_size,
        "lag_messages": summary(lags) if lags else {},
        "lag_seconds": summary(ages) if ages else {},
        "lag_trend_messages_per_s": round(trend, 1),
        "lag_trend_second_half_messages_per_s": round(settled, 1),
        "keeps_up": keeps_up,
        "samples": samples,
        "cpu": cpu_use,
    }


# ---- freshness --------------------------------------------------------------------------------
@dataclass
class Probe:
    symbol: str
    trade_date: datetime.date
    close: float
    published: float  # time.monotonic() before the publish
    visible: float | None = None


@dataclass
class ProbeRun:
    probes: list[Probe] = field(default_factory=list)
    outstanding: dict[str, Probe] = field(default_factory=dict)


async def _probe(
    args: argparse.Namespace, feed: Feed, db: Database, symbols: list[str], trade_date: datetime.date
) -> ProbeRun:
    broker = await connect_feed(feed.settings)
    run = ProbeRun()
    conn = db.connect("reader")
    bar = tqdm(
        total=args.probes, unit="probe", desc=f"freshness {feed.name}", disable=not sys.stderr.isatty()
    )
    interval = 1.0 / args.probe_rate
    next_probe = time.monotonic()
    number = 0
    try:
        while len(run.probes) < args.probes or run.outstanding:
            now = time.monotonic()
            free = [s for s in symbols if s not in run.outstanding]
            if len(run.probes) < args.probes and now >= next_probe and free:
                number += 1
                symbol = free[number % len(free)]
                close = 100.0 + number / 1000.0  # unique per probe
                text = f"{close:.4f}"
                bar_message = Bar(symbol, trade_date, number, text, text, text, text, text, "1000")
                probe = Probe(symbol, trade_date, close, time.monotonic())
                # stored by the broker (Kafka: every in-sync replica) when it returns
                await broker.publish_many(
                    [(subject_for(symbol), encode_bar(bar_message), message_id(bar_message))]
                )
                run.probes.append(probe)
                run.outstanding[symbol] = probe
                next_probe += interval
            if run.outstanding:
                with conn.cursor() as cur:
                    cur.execute(
                        "select symbol, close from marts.fct_daily_moving_averages "
                        "where symbol = any(%s) and trade_date = %s",
                        (list(run.outstanding), trade_date),
                    )
                    seen = dict(cur.fetchall())
                checked_at = time.monotonic()
                for symbol, probe in list(run.outstanding.items()):
                    if seen.get(symbol) is not None and abs(seen[symbol] - probe.close) < 1e-6:
                        probe.visible = checked_at
                        del run.outstanding[symbol]
                        bar.update(1)
                    elif checked_at - probe.published > PROBE_TIMEOUT_S:
                        del run.outstanding[symbol]  # never seen: counted as missed
                        bar.update(1)
            await asyncio.sleep(0.01)
    finally:
        bar.close()
        conn.close()
        await broker.close()
    return run


def step_freshness(args: argparse.Namespace, dbs: Databases, feeds: Feeds) -> dict[str, Any]:
    return {"runs": [freshness_once(args, dbs, feeds.new(broker, "freshness")) for broker in args.brokers]}


def freshness_once(args: argparse.Namespace, dbs: Databases, feed: Feed) -> dict[str, Any]:
    db = dbs.new("history")
    consumer = publisher = None
    try:
        symbols = [
            row[0]
            for row in db.query(
                "select symbol from marts.dim_symbols where has_prices "
                "order by trading_days desc, symbol limit %s",
                (args.probe_symbols,),
            )
        ]
        last = db.scalar("select max(trade_date) from marts.fct_daily_prices")
        trade_date = last + datetime.timedelta(days=1)
        while trade_date.weekday() >= 5:
            trade_date += datetime.timedelta(days=1)
        feed.prefill([])
        consumer = start_feed_consumer(args, db, feed, f"consumer-freshness-{feed.name}.log")
        wait_ready(consumer, feed)
        duration = args.probes / args.probe_rate + 60
        publisher = start_random_publisher(
            feed, args.fresh_rate, args.fresh_rate, duration, f"publisher-freshness-{feed.name}.log"
        )
        time.sleep(5.0)  # the background feed flows and the consumer has caught up with it
        cpu = feed_cpu_meter(publisher, [consumer], feed, db)
        cpu.start()
        first, _ = feed_state(feed.settings)
        run = asyncio.run(_probe(args, feed, db, symbols, trade_date))
        last, _ = feed_state(feed.settings)
        cpu_use = cpu.result()
        for cli in (publisher, consumer):
            if cli.process.poll() not in (None, 0):
                raise StepFailed(cli.failure())
        # The background feed's rate while probing, from the broker (the publisher is stopped
        # before its summary line).
        bars, seconds = last - first - len(run.probes), cpu_use["wall_s"]
    finally:
        stop_feed(publisher, [consumer] if consumer else [], feed, db, dbs)
    latencies = [p.visible - p.published for p in run.probes if p.visible is not None]
    missed = sum(1 for p in run.probes if p.visible is None)
    stats = summary(latencies) if latencies else {}
    meets = bool(latencies) and missed == 0 and nearest_rank(latencies, 95) <= FRESHNESS_TARGET_S
    log.info("freshness on %s: p95 %s s, %d missed", feed.name, stats.get("p95"), missed)
    return {
        "broker": feed.name,
        "background_rate": args.fresh_rate,
        "background_achieved_rate": round(bars / seconds) if seconds else 0,
        "probe_symbols": symbols,
        "probes": len(run.probes),
        "missed": missed,
        "latency_s": stats | ({"p50": round(nearest_rank(latencies, 50), 3)} if latencies else {}),
        "meets_target": meets,
        "batch_size": args.batch_size,
        "max_wait": args.max_wait,
        "linger": args.linger,
        "cpu": cpu_use,
    }


# ---- report -----------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    rows = ["| measurement | result | target | verdict |", "| --- | ---: | ---: | --- |"]
    drain = results.get("drain")
    if drain and "runs" in drain:
        files = {run["shape"]: run["bars_per_s"] for run in drain["file_path"]}
        single = {
            (run["broker"], run["shape"], run["batch_size"]): run["bars_per_s"]
            for run in drain["runs"]
            if run["consumers"] == 1
        }
        for run in drain["runs"]:
            rate = run["bars_per_s"]
            if run["consumers"] > 1:  # a group drains faster than one consumer
                one = single.get((run["broker"], run["shape"], run["batch_size"]))
                target, verdict = "> 1 consumer", f"{rate / one:.2f}x one" if one else "-"
                complete = run.get("bars_per_s_group_complete")
                if one and complete:
                    verdict += f"; once all hold partitions {complete:,} bars/s = {complete / one:.2f}x one"
            elif run["shape"] in files:  # >= 0.6x the file path on the same bars
                share = rate / files[run["shape"]]
                target = f">= {DRAIN_VS_FILES:.1f}x files"
                verdict = f"{share:.2f}x: " + ("met" if share >= DRAIN_VS_FILES else "missed")
            else:
                target = f"{DRAIN_TARGET:,.0f} bars/s"
                verdict = "met" if rate >= DRAIN_TARGET else f"missed ({rate / DRAIN_TARGET:.0%})"
            consumers = run.get("consumers", 1)
            group = f" x{consumers} consumers" if consumers > 1 else ""
            what = f"drain, {run.get('broker', 'nats')}{group}, {run['shape']}, batch {run['batch_size']:,}"
            what += f" ({run['bars']:,} bars, {run['seconds']:.1f} s"
            if "decode_only_bars_per_s" in run:
                ceiling = run["decode_only_bars_per_s"]
                what += f"; fetched and decoded alone {ceiling:,} bars/s, {rate / ceiling:.0%} of it"
            what += ")"
            rows.append(f"| {what} | {rate:,} bars/s | {target} | {verdict} |")
        for run in drain["file_path"]:
            what = (
                f"files, {run['shape']}: loader {run['loader_s']:.1f} s "
                f"({run['bars'] / run['loader_s']:,.0f} bars/s: the rows COPYed, no broker) + staging "
                f"{run['staging_apply_s']:.1f} s + trading days {run['trading_days_apply_s']:.1f} s"
            )
            ratios = ", ".join(
                f"{key.removesuffix('_vs_files')} / files = {value:.2f}x"
                for key, value in run.items()
                if key.endswith("_vs_files")
            )
            rows.append(f"| {what} | {run['bars_per_s']:,} bars/s | - | {ratios} |")
    for run in (results.get("breakdown") or {}).get("runs", []):
        per = run["per_batch_ms"]
        split = (
            f"write {per['write_batch']:,.0f} / staging {per['staging_apply']:,.0f} / "
            f"trading days {per['trading_days_apply']:,.0f}"
        )
        what = f"breakdown, {run['shape']}, batch {run['batch_size']:,}: ms per batch"
        rows.append(f"| {what} | {split} | - | {run['bars_per_s']:,} bars/s in-process |")
    for live in (results.get("live") or {}).get("runs", []):
        lag, age = live["lag_messages"], live["lag_seconds"]
        short = "met" if live["achieved_rate"] >= 0.95 * live["target_rate"] else "publisher short"
        group = f" x{live['consumers']} consumers" if live.get("consumers", 1) > 1 else ""
        what = (
            f"live, {live['broker']}{group}, {live['symbols']:,} symbols at {live['target_rate']:,.0f}/s: "
            "publisher achieved"
        )
        rows.append(f"| {what} | {live['achieved_rate']:,} bars/s | {live['target_rate']:,.0f} | {short} |")
        figures = " / ".join(f"{lag.get(k, 0):,.0f}" for k in ("min", "median", "p95", "max"))
        trend = (
            f"(trend {live['lag_trend_messages_per_s']:+,.0f}/s, "
            f"second half {live['lag_trend_second_half_messages_per_s']:+,.0f}/s)"
        )
        verdict = "keeps up" if live["keeps_up"] else "falls behind"
        what = f"live lag, {live['broker']}{group}, messages min/median/p95/max"
        rows.append(f"| {what} | {figures} {trend} | bounded | {verdict} |")
        figures = " / ".join(f"{age.get(k, 0):.1f}" for k in ("min", "median", "p95", "max"))
        rows.append(
            f"| live lag, {live['broker']}{group}, seconds min/median/p95/max | {figures} | bounded | - |"
        )
    for fresh in (results.get("freshness") or {}).get("runs", []):
        lat = fresh["latency_s"]
        figures = " / ".join(f"{lat.get(k, math.nan):.2f}" for k in ("p50", "p95", "max"))
        what = (
            f"freshness, {fresh['broker']}, at {fresh['background_achieved_rate']:,} bars/s, "
            f"{fresh['probes']} probes ({fresh['missed']} missed): p50 / p95 / max"
        )
        verdict = "met" if fresh["meets_target"] else "missed"
        rows.append(f"| {what} | {figures} s | p95 <= {FRESHNESS_TARGET_S:.0f} s | {verdict} |")
    for step in STEPS:
        if "failed" in (results.get(step) or {}):
            rows.append(f"| {step} | failed: see the log | - | - |")
    return "\n".join(rows)


def counts(text: str) -> list[int]:
    """An option's whole numbers, at least 1 each, separated by commas."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"whole numbers of at least 1 separated by commas, not {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps",
        default="drain,breakdown,live,freshness",
        help=f"comma-separated, of {', '.join(STEPS)} (default: all)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases (their names are logged)")
    parser.add_argument(
        "--batch-sizes",
        type=counts,
        default="2000,5000,20000",
        help="drain: consumer --batch-size values to compare (default 2000,5000,20000)",
    )
    parser.add_argument(
        "--brokers",
        default="kafka,nats",
        help="the brokers compared, side by side, in every step (default kafka,nats)",
    )
    parser.add_argument(
        "--consumers",
        type=counts,
        default="1,2",
        help="drain: consumers in Kafka's group, each count a run (default 1,2; JetStream: 1)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=20000,
        help="live and freshness: the consumer's --batch-size (default 20000, its own)",
    )
    parser.add_argument(
        "--max-wait", type=float, default=0.25, help="the consumer's --max-wait (default 0.25)"
    )
    parser.add_argument("--linger", type=float, default=0.02, help="the consumer's --linger (default 0.02)")
    parser.add_argument(
        "--backfill", type=Path, default=SAMPLE_DIR, help="drain: the folder replayed (the sample)"
    )
    parser.add_argument(
        "--no-over-history",
        dest="over_history",
        action="store_false",
        help="drain: skip the backfill replayed over its own history",
    )
    parser.add_argument("--random-symbols", type=int, default=8000, help="drain: random-walk symbols (8000)")
    parser.add_argument("--random-days", type=int, default=5, help="drain: random-walk days (5)")
    parser.add_argument("--live-seconds", type=float, default=300.0, help="live: how long (300)")
    parser.add_argument("--live-symbols", type=int, default=8000, help="live: symbols (8000)")
    parser.add_argument("--live-rate", type=float, default=8000.0, help="live: bars/s (8000)")
    parser.add_argument(
        "--live-consumers",
        type=counts,
        default="1",
        help="live: consumers in Kafka's group, each count a run (default 1; JetStream: 1)",
    )
    parser.add_argument(
        "--sample-every", type=float, default=5.0, help="live: seconds between lag samples (5)"
    )
    parser.add_argument(
        "--fresh-rate", type=int, default=1000, help="freshness: background bars/s = symbols (1000)"
    )
    parser.add_argument("--probes", type=int, default=300, help="freshness: probe bars (300)")
    parser.add_argument("--probe-rate", type=float, default=5.0, help="freshness: probes per second (5)")
    parser.add_argument("--probe-symbols", type=int, default=8, help="freshness: symbols probed (8)")
    parser.add_argument(
        "--consumer",
        type=Path,
        default=CONSUMER,
        help="the consumer script (default stream/consume.py; a patched copy to measure a change)",
    )
    parser.add_argument(
        "--patch-sql",
        type=Path,
        help="SQL run as transformer after each build, {database} replaced by the database's "
        "name (to measure a changed apply function before changing its macro)",
    )
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if not steps or any(s not in STEPS for s in steps):
        parser.error(f"--steps takes {', '.join(STEPS)} separated by commas, not {args.steps!r}")
    args.steps = steps
    if args.batch_size < 1:
        parser.error("--batch-size: at least 1")
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if not args.brokers or any(b not in ("kafka", "nats") for b in args.brokers):
        parser.error(f"--brokers takes kafka and/or nats separated by commas, not {args.brokers!r}")
    if not args.backfill.is_dir():
        parser.error(f"--backfill {args.backfill}: not a folder")
    if args.patch_sql and not args.patch_sql.is_file():
        parser.error(f"--patch-sql {args.patch_sql}: no such file")
    if min(args.live_seconds, args.live_rate, args.probe_rate, args.sample_every) <= 0 or args.probes < 1:
        parser.error("rates, durations and counts must be above 0")
    if not shutil.which("nats-server") and not Path("/usr/sbin/nats-server").exists():
        parser.error("nats-server is not installed: make stream-up installs it")
    return args


def code_fingerprints(args: argparse.Namespace) -> dict[str, str]:
    """sha256 (12 hex digits) and mtime of the code measured: the feed's modules, the macros."""
    consumer_dir = args.consumer.resolve().parent
    paths = sorted(consumer_dir.glob("*.py")) + sorted((PROJECT_DIR / "macros").rglob("*.sql"))
    paths += [p for p in [args.patch_sql] if p]
    out = {}
    for path in paths:
        stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC).strftime("%H:%M:%S")
        out[str(path)] = f"{hashlib.sha256(path.read_bytes()).hexdigest()[:12]} {stamp}"
    return out


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    results: dict[str, Any] = {
        "started": stamp,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "code": code_fingerprints(args),
    }
    dbs = Databases(args)
    feeds = Feeds()
    code = 0
    runners = {
        "drain": step_drain,
        "breakdown": step_breakdown,
        "live": step_live,
        "freshness": step_freshness,
    }
    try:
        for step in args.steps:
            log.info("step %s", step)
            try:
                results[step] = runners[step](args, dbs, feeds)
            except StepFailed as exc:
                log.error("step %s failed: %s", step, exc)
                results[step] = {"failed": str(exc)}
                code = 1
            except Exception as exc:  # a bug or a broken tool: the other steps still run
                log.exception("step %s failed", step)
                results[step] = {"failed": f"{type(exc).__name__}: {exc}"}
                code = 1
    finally:
        feeds.close()
        dbs.close()
    results["load_average_at_end"] = os.getloadavg()
    path = RESULTS_DIR / f"stream_{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    print(f"\nresults: {path.relative_to(PROJECT_DIR)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
