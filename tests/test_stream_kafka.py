"""The live feed on Apache Kafka: the project's own brokers (scripts/kafka.sh, in a temporary
state folder), the consumer run as users run it (`python stream/consume.py`, as the `streamer`
role, in group `warehouse`), and what the warehouse holds afterwards asserted: every offset
taken once, nothing lost, the same rows as a file load of the same bars.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import psycopg2.errors
import psycopg2.extensions
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from devtools.databases import Database, create_database, drop_database
from devtools.kafka import KafkaCluster
from devtools.nats import NatsServer
from devtools.project import PROJECT_DIR, SAMPLE_DIR
from stream import incremental, kafka_broker, warehouse
from stream.broker import connect as nats_connect
from stream.messages import Bar, encode_bar, message_id, subject_for
from stream.publish import replay
from stream.settings import BrokerSettings, KafkaSettings
from tests.stream_support import feed_database, random_bars, wait_until
from tests.test_upgrade import release_project

CONSUMER = PROJECT_DIR / "stream" / "consume.py"
PUBLISHER = PROJECT_DIR / "stream" / "publish.py"
# The kill test's seeds: two runs here, more from bench/bench_stream_kills.py (which sets them).
KILL_SEEDS = [
    int(seed) for seed in os.environ.get("STOCK_ANALYTICS_KILL_SEEDS", "20261205,20261206").split(",")
]
# What the feed leaves in staging and the trading days is the same on both editions (the
# JetStream suite covers the period marts' steps on each): each test runs in one pass, the one
# on the built sample in the apache pass (one_pass), the others in the main pass.


@pytest.fixture(scope="module")
def kafka() -> Iterator[KafkaCluster]:
    """One node: what `make stream-up` starts."""
    cluster = KafkaCluster(nodes=1)
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaCluster]:
    """Three nodes: what `STREAM_BROKERS=3 make stream-up` starts."""
    nodes = KafkaCluster(nodes=3)
    yield nodes
    nodes.cleanup()


@pytest.fixture(scope="module")
def feed_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A warehouse the tests share, each with a topic and symbols of its own."""
    db = feed_database(tmp_path_factory.mktemp("kafka_feed_db"), "stock_analytics_kafka")
    yield db
    drop_database(db)


def settings(cluster: KafkaCluster, topic: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=cluster.bootstrap, topic=topic)


def publish(cluster: KafkaCluster, topic: str, bars: Iterable[Bar]) -> int:
    async def run() -> int:
        broker = await kafka_broker.connect(settings(cluster, topic))
        try:
            await broker.ensure_stream()
            items = [(subject_for(bar.symbol), encode_bar(bar), message_id(bar)) for bar in bars]
            return await broker.publish_many(items)
        finally:
            await broker.close()

    return asyncio.run(run())


def consumer_env(db: Database, cluster: KafkaCluster, topic: str) -> dict[str, str]:
    return {
        **db.role_env("streamer"),
        "STOCK_ANALYTICS_BROKER": "kafka",
        "STOCK_ANALYTICS_KAFKA_BOOTSTRAP": cluster.bootstrap,
        "STOCK_ANALYTICS_KAFKA_TOPIC": topic,
        "PYTHONUNBUFFERED": "1",
    }


def run_consumer(
    db: Database, cluster: KafkaCluster, topic: str, *args: str, idle_s: float = 3, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CONSUMER), "--exit-when-idle", str(idle_s), *args],
        check=False,
        env=consumer_env(db, cluster, topic),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_consumer(
    db: Database, cluster: KafkaCluster, topic: str, *args: str, log_path: Path
) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, str(CONSUMER), *args],
            env=consumer_env(db, cluster, topic),
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def high_watermarks(cluster: KafkaCluster, topic: str) -> dict[int, int]:
    client = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "test-watermarks"})
    try:
        metadata = client.list_topics(topic, timeout=10)
        return {
            partition: client.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in metadata.topics[topic].partitions
        }
    finally:
        client.close()


def stored_offsets(db: Database, topic: str) -> dict[int, int]:
    return dict(
        db.query(
            "select partition, next_offset from raw.feed_offsets where split_part(topic, '@', 1) = %s",
            (topic,),
        )
    )


def taken_once(db: Database, topic: str) -> tuple[int, int]:
    """(messages in the ledger from this topic, distinct (partition, offset) among them)."""
    rows = db.query(
        "select count(*), count(distinct (stream, stream_sequence)) from raw.feed_messages "
        "where split_part(stream, '@', 1) = %s",
        (topic,),
    )
    return rows[0]


# ---- the broker ----------------------------------------------------------------------------


def test_the_script_reports_each_node_and_the_topic_gets_its_settings(kafka: KafkaCluster) -> None:
    """`make -s stream-status`'s line per node; the topic the clients create: 12 partitions, a
    week's retention, one replica on one node; what a monitor reads of it: the messages taken."""
    assert len(kafka.status()) == 1
    assert re.fullmatch(r"node 1 pid \d+ port \d+ up", kafka.status()[0]), kafka.status()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", kafka.bootstrap)
    assert publish(kafka, "bars_settings", random_bars(["SET1", "SET2"], days=2, revisions=1, seed=1)) == 4

    async def stream_state() -> tuple[int, None]:
        broker = await kafka_broker.connect(settings(kafka, "bars_settings"))
        try:
            return await broker.stream_state()
        finally:
            await broker.close()

    assert asyncio.run(stream_state()) == (4, None)  # the end offsets of every partition, summed
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    topic = admin.list_topics("bars_settings", timeout=10).topics["bars_settings"]
    assert len(topic.partitions) == 12
    assert {len(p.replicas) for p in topic.partitions.values()} == {1}
    resource = ConfigResource(ConfigResource.Type.TOPIC, "bars_settings")
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000)
    assert configs["min.insync.replicas"].value == "1"


# ---- the consumer group --------------------------------------------------------------------


def test_the_fence_refuses_a_batch_of_a_partition_another_consumer_wrote(feed_db: Database) -> None:
    """Two consumers that both started a batch of partition 3 at offset 0: the first commit
    moves the stored offset, the second finds it moved and writes nothing at all."""

    class Message:
        def __init__(self, offset: int, bar: Bar) -> None:
            self.data = encode_bar(bar)
            self.stream_sequence = offset
            self.published_at = None

    topic = "bars@fence-test"
    bars = random_bars(["FNC1"], days=3, revisions=1, seed=2)
    conn = feed_db.connect(role="streamer")
    try:
        assert warehouse.stored_offsets(conn, topic, {3: 0}, "a") == {3: 0}
        first = warehouse.PartitionFence(topic, 3, expected=0, next_offset=3, consumer="a")
        written = warehouse.write_batch(
            conn, f"{topic}/3", [Message(n, bar) for n, bar in enumerate(bars)], fence=first, scheme="kafka"
        )
        assert written.applied == 3
        zombie = warehouse.PartitionFence(topic, 3, expected=0, next_offset=3, consumer="b")
        with pytest.raises(
            warehouse.Fenced, match="the warehouse stands at offset 3, this batch started from 0"
        ):
            warehouse.write_batch(
                conn,
                f"{topic}/3",
                [Message(n, bar) for n, bar in enumerate(bars)],
                fence=zombie,
                scheme="kafka",
            )
    finally:
        conn.close()
    assert feed_db.query(
        "select next_offset, updated_by from raw.feed_offsets where topic = %s", (topic,)
    ) == [(3, "a")]
    assert feed_db.scalar("select count(*) from raw.feed_messages where stream = %s", (f"{topic}/3",)) == 3
    assert feed_db.scalar("select count(*) from raw.feed_bars where symbol = 'FNC1'") == 3


class _Message:
    def __init__(self, offset: int, bar: Bar) -> None:
        self.data = encode_bar(bar)
        self.stream_sequence = offset
        self.published_at = None


def test_the_steps_of_two_partitions_run_side_by_side_and_an_unscoped_one_waits_for_them(
    feed_db: Database,
) -> None:
    """Two consumers' incremental steps, each scoped to its partition: while one's staging and
    trading-days transactions are open, the other's run to their commit (a 5 s lock timeout:
    any wait fails the test); a step that reads the change log unscoped (dbt, a catching-up
    consumer) waits for the writers in flight instead of passing over a change that commits
    later; each step takes exactly its own changes, and the result equals a full rebuild."""
    topic = "bars@side-by-side"
    paths = [warehouse.feed_path(f"{topic}/{partition}", "kafka") for partition in (1, 2)]
    # A day's price-guard counts are one row both steps update (at the end of the staging
    # transaction, for a few statements): apart here, so that the open transaction holds nothing.
    bars = {
        1: random_bars(["SBS1", "SBS2"], days=3, revisions=1, seed=7),
        2: [
            dataclasses.replace(bar, trade_date=bar.trade_date + datetime.timedelta(days=7))
            for bar in random_bars(["SBS3", "SBS4"], days=3, revisions=1, seed=8)
        ],
    }
    staging = "staging.stg_market_data__daily_prices__apply"
    trading_days = "intermediate.int_daily_prices__trading_days__apply"
    first, second, unscoped = (feed_db.connect(role="streamer") for _ in range(3))
    try:
        # the year's chunks, created by a step before (two steps creating one chunk meet on it)
        warmup = random_bars(["SBS0"], days=1, revisions=1, seed=6)
        warehouse.write_batch(first, f"{topic}/0", [_Message(0, warmup[0])], scheme="kafka")
        incremental.apply_changes(first, ["SBS0"])
        for partition, partition_bars in bars.items():
            written = warehouse.write_batch(
                first,
                f"{topic}/{partition}",
                [_Message(n, bar) for n, bar in enumerate(partition_bars)],
                scheme="kafka",
            )
            assert written.applied == 6
        for conn in (first, second, unscoped):
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("set lock_timeout = '5s'")

        def staging_step(conn: psycopg2.extensions.connection, partition: int) -> tuple[int, str]:
            with conn.cursor() as cur:
                cur.execute(
                    f"select loads_applied, rows_written from {staging}(p_symbols => %s, p_feed_paths => %s)",
                    ([], [paths[partition - 1]]),
                )
                loads, rows = cur.fetchone()
                assert loads == 1
                cur.execute("select pg_current_xact_id()::text")
                return rows, cur.fetchone()[0]

        def trading_days_step(conn: psycopg2.extensions.connection, xid: str) -> int:
            with conn.cursor() as cur:
                cur.execute(
                    f"select symbols_changed from {trading_days}(p_writer_xids => %s::xid8[])", ([xid],)
                )
                return cur.fetchone()[0]

        first_rows, first_xid = staging_step(first, 1)  # open
        second_rows, second_xid = staging_step(second, 2)  # did not wait for the first
        assert (first_rows, second_rows) == (6, 6)
        second.commit()
        with pytest.raises(psycopg2.errors.LockNotAvailable), unscoped.cursor() as cur:
            cur.execute(f"select * from {trading_days}()")  # waits for the first's staging
        unscoped.rollback()
        first.commit()

        assert trading_days_step(second, second_xid) == 2  # open
        assert trading_days_step(first, first_xid) == 2  # did not wait for the second
        # a change taken is not taken twice, by the same transaction's step or an unscoped one
        assert trading_days_step(first, first_xid) == 0
        first.commit()
        second.commit()
    finally:
        for conn in (first, second, unscoped):
            conn.close()

    symbols = ("SBS1", "SBS2", "SBS3", "SBS4")
    stored_sql = (
        "select * from intermediate.int_daily_prices__trading_days"
        " where symbol in %s order by symbol, trade_date"
    )
    stepped = feed_db.query(stored_sql, (symbols,))
    assert len(stepped) == 12
    assert (
        feed_db.scalar(
            "select count(*) from staging.incremental_taken as taken"
            " inner join staging.stg_market_data__daily_prices__changes as changes using (change_id)"
            " where changes.symbol in %s",
            (symbols,),
        )
        == 4
    )
    feed_db.query(f"select * from {trading_days}(p_full => true)")
    assert feed_db.query(stored_sql, (symbols,)) == stepped
    assert feed_db.scalar("select count(*) from staging.incremental_taken") == 0


@pytest.mark.one_pass
@pytest.mark.parametrize("seed", KILL_SEEDS)
def test_two_consumers_killed_at_random_points_on_a_three_node_cluster_equal_a_file_load(
    tmp_path_factory: pytest.TempPathFactory, sample_db: Database, cluster: KafkaCluster, seed: int
) -> None:
    """The sample replayed into a replicated topic (3 nodes, 3 replicas, 2 in sync to write);
    two consumers of the group, each killed -9 at seeded random moments and started again:
    every offset is taken once, each partition's stored offset is its end, and staging and the
    trading days equal those of the file load of the same files."""
    feed_db = feed_database(tmp_path_factory.mktemp("kafka_kill_db"), "stock_analytics_kafka_kill")
    topic = f"bars-{seed}"
    try:
        assert [line.split()[-1] for line in cluster.status()] == ["up", "up", "up"]
        published = replay(settings(cluster, topic), SAMPLE_DIR)
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        assert {len(p.replicas) for p in partitions.values()} == {3}
        rng = random.Random(seed)
        log_dir = tmp_path_factory.mktemp("kafka_kill_logs")
        for round_number in range(3):
            logs = [log_dir / f"round{round_number}-{n}.log" for n in range(2)]
            consumers = [
                start_consumer(feed_db, cluster, topic, "--batch-size", "2000", log_path=log) for log in logs
            ]
            # Killed once they work: each has had its partitions (the group's join takes a
            # moment), then at a seeded random moment of its drain.
            for log in logs:
                wait_until(
                    lambda log=log: "assigned partitions" in log.read_text(), 120, f"{log.name}: a share"
                )
            for proc in consumers:
                time.sleep(rng.uniform(0.5, 4.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
            if round_number == 0:  # the kills land while the topic is being drained
                assert 0 < taken_once(feed_db, topic)[0] < published
        final_logs = [log_dir / f"end{n}.log" for n in range(2)]
        final = [
            start_consumer(feed_db, cluster, topic, "--exit-when-idle", "5", log_path=log)
            for log in final_logs
        ]
        for proc, log in zip(final, final_logs, strict=True):
            assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]

        assert taken_once(feed_db, topic) == (published, published)
        assert stored_offsets(feed_db, topic) == high_watermarks(cluster, topic)
        columns = "symbol, trade_date, asset_type, open, high, low, close, adj_close, volume"
        query = f"select {columns} from staging.stg_market_data__daily_prices order by symbol, trade_date"
        pd.testing.assert_frame_equal(feed_db.frame(query), sample_db.frame(query))
        days = "select symbol, trade_date, trading_day_number, close, sma_20, sma_200, ema_12, rsi_14 "
        days += "from intermediate.int_daily_prices__trading_days order by 1, 2"
        pd.testing.assert_frame_equal(feed_db.frame(days), sample_db.frame(days), rtol=1e-12)
    finally:
        drop_database(feed_db)


def publisher(cluster: KafkaCluster, topic: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(PUBLISHER), *args],
        env={
            **os.environ,
            "STOCK_ANALYTICS_KAFKA_BOOTSTRAP": cluster.bootstrap,
            "STOCK_ANALYTICS_KAFKA_TOPIC": topic,
        },
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def assert_every_offset_taken_once(db: Database, cluster: KafkaCluster, topic: str, bars: int) -> None:
    ends = high_watermarks(cluster, topic)
    assert sum(ends.values()) == bars
    assert taken_once(db, topic) == (bars, bars)
    assert stored_offsets(db, topic) == ends


def test_the_leader_of_a_partition_killed_mid_stream_loses_nothing_and_rejoins(
    cluster: KafkaCluster, feed_db: Database, tmp_path: Path
) -> None:
    """kill -9 of the node leading partition 0 while bars are published and consumed: the
    producer and the consumer go on with the other two, every bar is taken once, and the node,
    started again, catches up until it is in sync for every partition."""
    topic = "bars_leader"
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    assert publish(cluster, topic, random_bars(["SYM0001"], days=1, revisions=1, seed=5)) == 1
    leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    consumer = start_consumer(feed_db, cluster, topic, log_path=tmp_path / "consumer.log")
    try:
        wait_until(lambda: "assigned partitions" in (tmp_path / "consumer.log").read_text(), 120, "the group")
        feed = publisher(cluster, topic, "--random", "200", "--days", "30", "--rate", "1000")
        time.sleep(2)
        cluster.kill(leader)
        out, err = feed.communicate(timeout=300)
        assert feed.returncode == 0, err[-3000:]
        assert "published 6,000 bars" in out
        cluster.up()
        assert [line.split()[-1] for line in cluster.status()] == ["up", "up", "up"]
        wait_until(lambda: taken_once(feed_db, topic)[0] == 6001, 300, "the consumer to take every bar")
    finally:
        consumer.terminate()
        assert consumer.wait(timeout=60) == 0, (tmp_path / "consumer.log").read_text()[-3000:]
    assert_every_offset_taken_once(feed_db, cluster, topic, 6001)

    def in_sync() -> bool:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        return all(len(p.isrs) == 3 for p in partitions)

    wait_until(in_sync, 120, f"node {leader} to catch up with every partition")


def test_a_consumer_added_then_one_stopped_mid_stream_miss_nothing(
    kafka: KafkaCluster, feed_db: Database, tmp_path: Path
) -> None:
    """Two rebalances while bars come: a second consumer joins, then the first stops (SIGTERM);
    every bar is taken once, and the shares moved (both logged assignments)."""
    topic = "bars_rebalance"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    first = start_consumer(feed_db, kafka, topic, log_path=logs[0])
    second = None
    try:
        # 25 s of bars: both rebalances happen while they come
        feed = publisher(kafka, topic, "--random", "200", "--days", "20", "--rate", "160")
        wait_until(lambda: "assigned partitions" in logs[0].read_text(), 120, "the first consumer's share")
        second = start_consumer(feed_db, kafka, topic, log_path=logs[1])
        wait_until(lambda: "assigned partitions" in logs[1].read_text(), 120, "the second consumer's share")
        time.sleep(1)
        first.terminate()
        assert first.wait(timeout=60) == 0, logs[0].read_text()[-3000:]
        wait_until(
            lambda: logs[1].read_text().count("assigned partitions") >= 2,
            60,
            "the second to take every partition",
        )
        assert feed.poll() is None, "the bars stopped coming before the second rebalance"
        out, err = feed.communicate(timeout=300)
        assert feed.returncode == 0, err[-3000:]
        assert "published 4,000 bars" in out
        wait_until(lambda: taken_once(feed_db, topic)[0] == 4000, 300, "every bar taken")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    assert_every_offset_taken_once(feed_db, kafka, topic, 4000)


def test_a_consumer_stalled_past_its_session_commits_nothing_after_it_wakes(
    kafka: KafkaCluster, feed_db: Database, tmp_path: Path
) -> None:
    """A zombie: consumer A holds a batch (a long --max-wait and --linger) when SIGSTOPped; B
    takes its partitions after the session timeout and writes everything; A, woken, writes
    nothing of its batch, says why, and goes on in the group."""
    topic = "bars_zombie"
    bars = random_bars([f"ZMB{n}" for n in range(12)], days=5, revisions=1, seed=3)
    assert publish(kafka, topic, bars) == len(bars)
    zombie = start_consumer(
        feed_db,
        kafka,
        topic,
        "--max-wait",
        "20",
        "--linger",
        "20",
        "--batch-size",
        "100000",
        log_path=tmp_path / "a.log",
    )
    try:
        wait_until(lambda: "assigned partitions" in (tmp_path / "a.log").read_text(), 60, "A's assignment")
        time.sleep(2)  # A is collecting its batch
        zombie.send_signal(signal.SIGSTOP)
        other = run_consumer(feed_db, kafka, topic, idle_s=15, timeout=180)
        assert other.returncode == 0, other.stderr[-3000:]
        assert taken_once(feed_db, topic) == (len(bars), len(bars))
        zombie.send_signal(signal.SIGCONT)
        wait_until(
            lambda: re.search(r"revoked|lost|took the partition over", (tmp_path / "a.log").read_text()),
            60,
            "A to notice it lost its partitions",
        )
        time.sleep(3)
    finally:
        zombie.send_signal(signal.SIGCONT)
        zombie.terminate()
        zombie.wait(timeout=60)
    assert taken_once(feed_db, topic) == (len(bars), len(bars))
    assert (
        feed_db.scalar(
            "select count(*) from (select symbol, date, revision from raw.feed_bars "
            "where symbol like 'ZMB%%' group by 1, 2, 3 having count(*) > 1) as twice"
        )
        == 0
    )
    assert stored_offsets(feed_db, topic) == high_watermarks(kafka, topic)


def test_offsets_older_than_the_topic_keeps_stop_the_consumer_with_what_to_do(
    kafka: KafkaCluster, feed_db: Database
) -> None:
    """Messages the warehouse never took are gone from the topic (retention, simulated by
    deleting them): the consumer stops (exit 1) naming the partitions and the recovery; with
    --skip-to-retained it goes on from the first kept message, logging what it skipped."""
    topic = "bars_retention"
    first = random_bars(["RET1", "RET2"], days=3, revisions=1, seed=4)
    assert publish(kafka, topic, first) == len(first)
    assert run_consumer(feed_db, kafka, topic).returncode == 0
    later = random_bars(["RET1", "RET2"], days=6, revisions=1, seed=4)[len(first) :]
    publish(kafka, topic, later)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    ends = high_watermarks(kafka, topic)
    deleted = admin.delete_records([TopicPartition(topic, p, end) for p, end in ends.items() if end > 0])
    for future in deleted.values():
        future.result(timeout=10)

    stopped = run_consumer(feed_db, kafka, topic)
    assert stopped.returncode == 1
    assert "older than what topic bars_retention keeps" in stopped.stderr
    assert "Load the missing days from files" in stopped.stderr and "--skip-to-retained" in stopped.stderr
    assert taken_once(feed_db, topic)[0] == len(first)

    skipped = run_consumer(feed_db, kafka, topic, "--skip-to-retained")
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "which the topic no longer keeps" in skipped.stderr
    assert stored_offsets(feed_db, topic) == ends


# ---- upgrade -------------------------------------------------------------------------------

# The last release whose feed ran on JetStream alone (no raw.feed_offsets).
JETSTREAM_RELEASE = "209970d4acae53df1810e3c1063faf84c0aaa3e4"


def test_a_warehouse_fed_by_the_jetstream_release_upgrades_in_place(
    kafka: KafkaCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The release before Kafka loads and takes bars from JetStream (its loader, its consumer);
    the current loader adds the offsets table (migration 4) and keeps the ledger; the Kafka
    consumer then takes more bars into the same warehouse."""
    release = release_project(tmp_path_factory.mktemp("jetstream_release"), JETSTREAM_RELEASE)
    db = create_database(tmp_path_factory.mktemp("kafka_upgrade_db"), prefix="stock_analytics_kafka_upgrade")
    server = NatsServer()

    def release_run(role: str, *command: str | Path, env: dict[str, str] | None = None) -> None:
        proc = subprocess.run(
            [sys.executable, *map(str, command)],
            env={**db.role_env(role), "PYTHONPATH": str(release), **(env or {})},
            cwd=release,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    try:
        release_run("loader", release / "loader" / "copy_csv.py", SAMPLE_DIR / "symbols_valid_meta.csv")
        build = db.dbt("build", "--exclude", "test_type:data")
        assert build.returncode == 0, build.stdout[-3000:]
        assert db.scalar("select to_regclass('raw.feed_offsets') is null")
        old_bars = random_bars(["UPG1", "UPG2"], days=4, revisions=1, seed=6)
        assert replay_bars_on_nats(server, old_bars) == len(old_bars)
        release_run(
            "streamer",
            release / "stream" / "consume.py",
            "--exit-when-idle",
            "2",
            env={"STOCK_ANALYTICS_NATS_URL": server.url},
        )
        ledger = db.query("select stream, stream_sequence, outcome from raw.feed_messages order by 1, 2")
        assert len(ledger) == len(old_bars)

        loaded = db.run_loader(SAMPLE_DIR / "symbols_valid_meta.csv")
        assert loaded.returncode == 0, loaded.stderr
        assert "applying migration 4" in loaded.stderr
        assert (
            db.query("select stream, stream_sequence, outcome from raw.feed_messages order by 1, 2") == ledger
        )

        topic = "bars_upgrade"
        new_bars = random_bars(["UPG1", "UPG2"], days=8, revisions=1, seed=6)[len(old_bars) :]
        assert publish(kafka, topic, new_bars) == len(new_bars)
        taken = run_consumer(db, kafka, topic)
        assert taken.returncode == 0, taken.stderr[-3000:]
        assert_every_offset_taken_once(db, kafka, topic, len(new_bars))
        closes = db.query(
            "select count(*), count(sma_200) from marts.fct_daily_moving_averages where symbol like 'UPG%%'"
        )
        assert closes == [(len(old_bars) + len(new_bars), 0)]
    finally:
        server.kill()
        drop_database(db)


def replay_bars_on_nats(server: NatsServer, bars: list[Bar]) -> int:
    async def run() -> int:
        broker = await nats_connect(BrokerSettings(url=server.url))
        try:
            await broker.ensure_stream()
            return await broker.publish_many(
                [(subject_for(bar.symbol), encode_bar(bar), message_id(bar)) for bar in bars]
            )
        finally:
            await broker.close()

    return asyncio.run(run())
