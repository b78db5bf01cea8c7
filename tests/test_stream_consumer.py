"""The live feed's guarantees, against real brokers and a real database: those both backends
give run on both (the `feed` fixture: NATS JetStream, then Kafka), those of JetStream alone on
it; Kafka's own (its cluster, partitions and consumer group) are in test_stream_kafka.py.

Every test runs the consumer as users do (`python stream/consume.py`, as the `streamer` role)
and asserts what the warehouse holds afterwards: each message taken once, the highest revision
per (symbol, date) current, bad messages kept with their reason, the moving averages equal to
those of a clean file load of the same bars.
"""

from __future__ import annotations

import datetime
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from devtools.databases import Database, drop_database
from devtools.kafka import KafkaCluster
from devtools.nats import NatsServer
from devtools.project import PROJECT_DIR, SAMPLE_DIR
from stream import incremental
from stream.messages import Bar
from stream.publish import replay
from tests import reference
from tests.stream_support import Feed, KafkaFeed, NatsFeed, feed_database, random_bars, wait_until

CONSUMER = PROJECT_DIR / "stream" / "consume.py"
# What the feed leaves behind depends on the edition only through the period marts, but the
# consumer runs their steps (tables on apache): both editions.
pytestmark = pytest.mark.editions
# What the feed leaves does not depend on the broker once it is in the raw layer: Kafka's runs
# are one_pass (the apache pass), JetStream's run on both editions.
BROKERS = ["nats", pytest.param("kafka", marks=pytest.mark.one_pass)]

PRICE_COLUMNS = ["open", "high", "low", "close", "adj_close", "volume"]
AVERAGE_COLUMNS = ["sma_20", "sma_30", "sma_50", "sma_200"]


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feed_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = feed_database(tmp_path_factory.mktemp("feed_db"), "stock_analytics_feed")
    yield db
    drop_database(db)


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """One node, what `make stream-up` starts; each test has a topic of its own."""
    cluster = KafkaCluster(nodes=1)
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="module", params=BROKERS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def broker_db(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """The warehouse of one backend's tests (they use the same symbols): JetStream's is feed_db."""
    if backend == "nats":
        yield request.getfixturevalue("feed_db")
        return
    db = feed_database(tmp_path_factory.mktemp(f"feed_db_{backend}"), f"stock_analytics_feed_{backend}")
    yield db
    drop_database(db)


@pytest.fixture
def feed(backend: str, request: pytest.FixtureRequest) -> Iterator[Feed]:
    """A feed of the test's own on the backend: a JetStream server, or a Kafka topic."""
    if backend == "kafka":
        yield KafkaFeed(request.getfixturevalue("kafka_cluster"), f"consumer-test-{uuid.uuid4().hex[:12]}")
        return
    yield request.getfixturevalue("nats_feed")


@pytest.fixture
def nats_feed() -> Iterator[NatsFeed]:
    """For what JetStream alone has (its durable consumer's redelivery, a one-server restart)."""
    server = NatsServer()
    yield NatsFeed(server)
    server.kill()


# ---- helpers -------------------------------------------------------------------------------


def consumer_env(db: Database, feed: Feed) -> dict[str, str]:
    return {**db.role_env("streamer"), **feed.env(), "PYTHONUNBUFFERED": "1"}


def run_consumer(
    db: Database, feed: Feed, idle_s: float = 1.5, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CONSUMER), "--exit-when-idle", str(idle_s)],
        check=False,
        env=consumer_env(db, feed),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_consumer(db: Database, feed: Feed, *args: str, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, str(CONSUMER), *args],
            env=consumer_env(db, feed),
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def expected_current(bars: Iterable[Bar]) -> pd.DataFrame:
    """Per (symbol, date) the bar of the highest revision: what the feed must leave current."""
    best: dict[tuple[str, datetime.date], Bar] = {}
    for bar in bars:
        key = (bar.symbol, bar.trade_date)
        if key not in best or bar.revision > best[key].revision:
            best[key] = bar
    frame = pd.DataFrame(
        [
            {
                "symbol": b.symbol,
                "trade_date": b.trade_date,
                **{c: float(getattr(b, c)) for c in PRICE_COLUMNS},
            }
            for b in best.values()
        ]
    )
    return frame.sort_values(["symbol", "trade_date"]).reset_index(drop=True)


def staging_rows(db: Database, symbols: list[str]) -> pd.DataFrame:
    frame = db.frame(
        f"""
        select symbol, trade_date, {", ".join(PRICE_COLUMNS)}
        from staging.stg_market_data__daily_prices
        where symbol = any(%s) order by symbol, trade_date
        """.replace("%s", "array[" + ",".join(f"'{s}'" for s in symbols) + "]")
    )
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).dt.date
    frame["volume"] = frame["volume"].astype(float)
    return frame


def moving_averages_match_pandas(db: Database, symbols: list[str]) -> None:
    """The feed's moving averages equal pandas' rolling means of the closes now current."""
    frame = db.frame(
        "select symbol, trade_date, close, "
        + ", ".join(AVERAGE_COLUMNS)
        + " from marts.fct_daily_moving_averages where symbol = any(array["
        + ",".join(f"'{s}'" for s in symbols)
        + "]) order by symbol, trade_date",
        role="reader",
    )
    assert len(frame) > 0
    for window in (20, 30, 50, 200):
        expected = frame.groupby("symbol")["close"].transform(lambda s, w=window: s.rolling(w).mean())
        got = frame[f"sma_{window}"]
        both = expected.notna()
        differing = frame.loc[got.notna() != both, ["symbol", "trade_date", f"sma_{window}"]]
        assert differing.empty, f"sma_{window}: different rows have a value:\n{differing.head(10)}"
        assert ((got[both] - expected[both]).abs() <= 1e-9 * expected[both].abs()).all(), f"sma_{window}"


def ledger_counts(db: Database, symbol_pattern: str) -> dict[str, int]:
    """Messages in the ledger by outcome, of the symbols matching a LIKE pattern."""
    rows = db.query(
        "select outcome, count(*) from raw.feed_messages where symbol like %s group by outcome",
        (symbol_pattern,),
    )
    return dict(rows)


# ---- exactly once: kill -9, redelivery ------------------------------------------------------


def test_kill_9_at_random_points_then_restart_equals_a_file_load(
    tmp_path_factory: pytest.TempPathFactory, sample_db: Database
) -> None:
    """The whole sample replayed as a feed; the consumer killed with SIGKILL at 10 random
    moments, then restarted: the warehouse equals the file load of the same files, row for
    row, and every message was taken exactly once."""
    db = feed_database(tmp_path_factory.mktemp("feed_kill"), "stock_analytics_feed_kill")
    server = NatsServer()
    feed = NatsFeed(server)
    try:
        published = replay(server.url, SAMPLE_DIR)
        assert published == sum(
            sum(1 for line in path.read_text().splitlines()[1:] if line.strip())
            for path in sorted(SAMPLE_DIR.glob("*/*.csv"))
        )
        rng = random.Random(20261122)
        log_path = tmp_path_factory.mktemp("feed_kill_logs") / "consumer.log"
        taken_before_kill = []
        for _ in range(10):
            proc = start_consumer(db, feed, "--batch-size", "2000", log_path=log_path)
            time.sleep(rng.uniform(1.0, 3.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            taken_before_kill.append(db.scalar("select count(*) from raw.feed_messages"))
        # the kills landed while the stream was being drained, not after
        assert taken_before_kill[0] < published, taken_before_kill
        final = run_consumer(db, feed, idle_s=2)
        assert final.returncode == 0, final.stdout + final.stderr[-3000:]

        assert db.scalar("select count(*) from raw.feed_messages") == published
        assert db.scalar("select count(distinct stream_sequence) from raw.feed_messages") == published
        assert db.query("select min(stream_sequence), max(stream_sequence) from raw.feed_messages") == [
            (1, published)
        ]
        # nothing twice: one bar per (symbol, date, revision) written
        assert (
            db.scalar(
                "select count(*) from (select symbol, date, revision from raw.feed_bars "
                "group by 1, 2, 3 having count(*) > 1) as twice"
            )
            == 0
        )

        # the price guard judges each run against the bars before it, however the kills cut
        # the batches: the real sample fed from 1962 on holds nothing back
        assert db.query("select symbol, reason from staging.stg_market_data__held_prices") == []
        columns = "symbol, trade_date, asset_type, open, high, low, close, adj_close, volume"
        fed = db.frame(
            f"select {columns} from staging.stg_market_data__daily_prices order by symbol, trade_date"
        )
        loaded = sample_db.frame(
            f"select {columns} from staging.stg_market_data__daily_prices order by symbol, trade_date"
        )
        pd.testing.assert_frame_equal(fed, loaded)

        # built batch by batch as the feed came, equal to the full build of the files
        days = "select symbol, trade_date, trading_day_number, "
        days += "close, {} from {} order by 1, 2"
        trading_days = days.format(", ".join(AVERAGE_COLUMNS), "intermediate.int_daily_prices__trading_days")
        pd.testing.assert_frame_equal(db.frame(trading_days), sample_db.frame(trading_days), rtol=1e-12)
        moving_averages_match_pandas(db, ["AAPL", "BA", "AGG"])
        # the indicators and the screener too: the feed's step is dbt's
        indicators = "select symbol, trade_date, {} from marts.fct_daily_indicators order by 1, 2"
        indicators = indicators.format(", ".join(reference.INDICATOR_SCALES))
        pd.testing.assert_frame_equal(db.frame(indicators), sample_db.frame(indicators), rtol=1e-12)
        screener = "select * from marts.fct_latest_day order by symbol"
        pd.testing.assert_frame_equal(db.frame(screener), sample_db.frame(screener), rtol=1e-12)
    finally:
        server.kill()
        drop_database(db)


def test_redelivered_and_resent_messages_are_taken_once(
    feed_db: Database, nats_feed: NatsFeed, tmp_path: Path
) -> None:
    """A crash after the commit and before the acknowledgement: the broker delivers the batch
    again and the ledger skips it. A message re-sent under a new sequence (outside the broker's
    de-duplication window) is stale, not applied twice."""
    bars = random_bars(["RDL1", "RDL2"], days=5, revisions=1, seed=1)
    nats_feed.publish(bars)
    first = run_consumer(feed_db, nats_feed)
    assert first.returncode == 0, first.stderr[-2000:]
    before = ledger_counts(feed_db, "RDL%")
    # Forget the acknowledgements: a new durable consumer delivers every message again, as a
    # consumer restarted from scratch (or after its state was lost) would get them.
    env = {"STOCK_ANALYTICS_NATS_DURABLE": "warehouse_again"}
    again = subprocess.run(
        [sys.executable, str(CONSUMER), "--exit-when-idle", "1.5"],
        check=False,
        env={**consumer_env(feed_db, nats_feed), **env},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{len(bars)} already taken" in again.stdout
    assert ledger_counts(feed_db, "RDL%") == before
    # The same bars sent again as new messages: all stale.
    nats_feed.publish(bars)
    resent = run_consumer(feed_db, nats_feed)
    assert resent.returncode == 0
    after = ledger_counts(feed_db, "RDL%")
    assert after["stale"] - before.get("stale", 0) == len(bars)
    assert after["applied"] == before["applied"] == len(bars)
    pd.testing.assert_frame_equal(staging_rows(feed_db, ["RDL1", "RDL2"]), expected_current(bars))


# ---- revisions: any order gives the in-order result ----------------------------------------


def test_duplicates_late_resends_and_out_of_order_revisions_give_the_in_order_result(
    broker_db: Database, feed: Feed
) -> None:
    in_order = random_bars(["ORD1", "ORD2", "ORD3"], days=30, revisions=3, seed=7)
    scrambled = [
        Bar(
            f"SCR{bar.symbol[-1]}",
            bar.trade_date,
            bar.revision,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.adj_close,
            bar.volume,
        )
        for bar in in_order
    ]
    rng = random.Random(3)
    shuffled = scrambled[:]
    rng.shuffle(shuffled)
    duplicates = rng.sample(scrambled, 40)  # duplicates and late re-sends of any revision
    feed.publish(in_order)
    feed.publish(shuffled[: len(shuffled) // 2])
    first_half = run_consumer(broker_db, feed)
    assert first_half.returncode == 0, first_half.stderr[-2000:]
    feed.publish(shuffled[len(shuffled) // 2 :] + duplicates)
    second_half = run_consumer(broker_db, feed)
    assert second_half.returncode == 0, second_half.stderr[-2000:]

    ordered = staging_rows(broker_db, ["ORD1", "ORD2", "ORD3"])
    pd.testing.assert_frame_equal(ordered, expected_current(in_order))
    out_of_order = staging_rows(broker_db, ["SCR1", "SCR2", "SCR3"])
    out_of_order["symbol"] = out_of_order["symbol"].str.replace("SCR", "ORD")
    pd.testing.assert_frame_equal(out_of_order, ordered)
    moving_averages_match_pandas(broker_db, ["ORD1", "ORD2", "ORD3", "SCR1", "SCR2", "SCR3"])
    # The period marts show the feed too: tables the consumer applied when idle (the monthly
    # mart on both editions), continuous aggregates (community, weekly) by real-time aggregation.
    monthly = broker_db.frame(
        "select symbol, period_start, trading_days, avg_close from marts.fct_price_averages_monthly "
        "where symbol in ('ORD1', 'ORD2', 'ORD3') order by symbol, period_start",
        role="reader",
    )
    closes = expected_current(in_order)
    closes["period_start"] = pd.to_datetime(closes["trade_date"]).dt.to_period("M").dt.start_time.dt.date
    expected = closes.groupby(["symbol", "period_start"], as_index=False).agg(
        trading_days=("close", "size"), avg_close=("close", "mean")
    )
    monthly["period_start"] = pd.to_datetime(monthly["period_start"]).dt.date
    pd.testing.assert_frame_equal(monthly, expected, check_dtype=False, rtol=1e-12)
    # every message is in the ledger once: 90 applied per prefix, the rest stale
    outcomes = dict(
        broker_db.query(
            "select outcome, count(*) from raw.feed_messages where symbol like 'SCR%%' group by outcome"
        )
    )
    assert outcomes["applied"] >= 90  # a lower revision arriving first is applied, then replaced
    assert outcomes["applied"] + outcomes["stale"] == len(shuffled) + len(duplicates)
    assert (
        broker_db.scalar("select count(*) from raw.feed_bars where symbol like 'SCR%%'")
        == outcomes["applied"]
    )


# ---- bad messages ----------------------------------------------------------------------------


def test_bad_messages_are_kept_with_their_reason_and_never_stop_the_consumer(
    broker_db: Database, feed: Feed
) -> None:
    good = random_bars(["BADM"], days=3, revisions=1, seed=5)
    feed.publish(good[:1])
    feed.publish_raw(
        [
            b"not json at all",
            b'{"v": 1, "symbol": "BADM", "date": "2024-02-01", "revision": 0, "close": NaN}',
            b'{"v": 1, "symbol": "BADM", "date": "2024-02-02", "revision": 0, "close": "1e999"}',
            b'{"v": 7, "symbol": "BADM", "date": "2024-02-03", "revision": 0, "close": "1"}',
            b'{"v": 1, "symbol": "BADM", "date": "02/04/2024", "revision": 0, "close": "1"}',
            b"\xff\xfe\x00garbage",
        ],
    )
    feed.publish(good[1:])
    proc = run_consumer(broker_db, feed)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]  # finished, some rejected
    assert "6 rejected" in proc.stdout
    rejects = broker_db.query(
        """
        select rejects.reason_code, rejects.reason, rejects.raw_line
        from raw.load_rejects as rejects
        inner join raw.load_log on rejects.load_id = load_log.load_id
        where load_log.file_kind = 'feed'
            and rejects.raw_line like any(array['%%BADM%%', '%%garbage%%', 'not json%%'])
        order by rejects.load_id, rejects.line_number
        """
    )
    codes = [row[0] for row in rejects]
    assert codes == [
        "unparseable_message",
        "unparseable_message",  # NaN is no JSON value
        "non_finite_price",
        "unknown_layout",
        "unparseable_date",
        "unparseable_message",
    ], rejects
    assert all("sequence" in row[1] for row in rejects)
    assert rejects[0][2] == "not json at all"
    # the good bars around them all arrived
    pd.testing.assert_frame_equal(staging_rows(broker_db, ["BADM"]), expected_current(good))


# ---- files and the feed ----------------------------------------------------------------------


def test_the_later_of_a_file_and_the_feed_wins_and_a_replace_retires_earlier_feed_bars(
    broker_db: Database, feed: Feed, tmp_path: Path
) -> None:
    bars = random_bars(["FILEFEED"], days=4, revisions=1, seed=9)
    feed.publish(bars + random_bars(["FEEDONLY"], days=3, revisions=2, seed=10))
    assert run_consumer(broker_db, feed).returncode == 0
    day = bars[1].trade_date

    def close_on(trade_date: datetime.date) -> float:
        return broker_db.scalar(
            "select close from staging.stg_market_data__daily_prices "
            "where symbol = 'FILEFEED' and trade_date = %s",
            (trade_date,),
        )

    assert close_on(day) == float(bars[1].close)
    # a file loaded later disagrees on that day: the file wins
    csv = tmp_path / "FILEFEED.csv"
    csv.write_text(f"Date,Open,High,Low,Close,Adj Close,Volume\n{day},1,2,0.5,1.5,1.5,10\n")
    proc = broker_db.run_loader(csv)
    assert proc.returncode == 0, proc.stderr
    build = broker_db.dbt("build", "-s", "stg_market_data__daily_prices+", "--exclude", "test_type:data")
    assert build.returncode == 0, build.stdout[-2000:]
    assert close_on(day) == 1.5
    # the build also gave the symbol only the feed knows its row in dim_symbols
    assert broker_db.query(
        "select has_prices, trading_days, first_trade_date from marts.dim_symbols where symbol = 'FEEDONLY'"
    ) == [(True, 3, datetime.date(2024, 1, 1))]
    # a new revision from the feed, later again: the feed wins
    revised = Bar("FILEFEED", day, 1, "1", "3", "1", "2.5", "2.5", "20")
    feed.publish([revised])
    assert run_consumer(broker_db, feed).returncode == 0
    assert close_on(day) == 2.5
    # a --replace file retires the symbol's whole earlier history, the feed's bars included
    csv.write_text(f"Date,Open,High,Low,Close,Adj Close,Volume\n{bars[3].trade_date},5,6,4,5.5,5.5,30\n")
    proc = broker_db.run_loader(csv, "--replace")
    assert proc.returncode == 0, proc.stderr
    build = broker_db.dbt("build", "-s", "stg_market_data__daily_prices+", "--exclude", "test_type:data")
    assert build.returncode == 0, build.stdout[-2000:]
    kept = broker_db.query(
        "select trade_date, close from staging.stg_market_data__daily_prices where symbol = 'FILEFEED'"
    )
    assert kept == [(bars[3].trade_date, 5.5)]
    days = broker_db.query(
        "select trade_date, trading_day_number from intermediate.int_daily_prices__trading_days "
        "where symbol = 'FILEFEED'"
    )
    assert days == [(bars[3].trade_date, 1)]


# ---- failures: the broker restarts, the database goes away ---------------------------------


def test_broker_restarted_mid_stream_the_consumer_reconnects_and_catches_up(
    feed_db: Database, nats_feed: NatsFeed, tmp_path: Path
) -> None:
    bars = random_bars(["BRK1", "BRK2", "BRK3"], days=40, revisions=2, seed=11)
    half = len(bars) // 2
    nats_feed.publish(bars[:half])
    log_path = tmp_path / "consumer.log"
    proc = start_consumer(feed_db, nats_feed, "--exit-when-idle", "20", log_path=log_path)
    try:
        wait_until(
            lambda: feed_db.scalar("select count(*) from raw.feed_messages where symbol like 'BRK%%'") > 0,
            60,
            "the first messages",
        )
        nats_feed.server.stop()
        time.sleep(2)
        assert proc.poll() is None, log_path.read_text()[-2000:]
        nats_feed.server.start()
        nats_feed.publish(bars[half:])
        wait_until(
            lambda: (
                feed_db.scalar("select count(*) from raw.feed_messages where symbol like 'BRK%%'")
                == len(bars)
            ),
            120,
            "every message after the restart",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    assert "reconnect" in log_path.read_text()
    wait_until(lambda: len(staging_rows(feed_db, ["BRK1", "BRK2", "BRK3"])) == 120, 30, "staging")
    pd.testing.assert_frame_equal(staging_rows(feed_db, ["BRK1", "BRK2", "BRK3"]), expected_current(bars))
    moving_averages_match_pandas(feed_db, ["BRK1", "BRK2", "BRK3"])


def test_database_unavailable_for_a_while_the_consumer_waits_and_loses_nothing(
    broker_db: Database, feed: Feed, tmp_path: Path
) -> None:
    bars = random_bars(["DBD1", "DBD2"], days=30, revisions=2, seed=13)
    log_path = tmp_path / "consumer.log"
    proc = start_consumer(broker_db, feed, "--exit-when-idle", "30", log_path=log_path)
    admin = create_admin_connection(broker_db)
    try:
        feed.publish(bars[:20])
        wait_until(
            lambda: (
                broker_db.scalar("select count(*) from raw.feed_messages where symbol like 'DBD%%'") == 20
            ),
            60,
            "the first bars",
        )
        # The database goes away: no new connections, the consumer's own ones cut.
        with admin.cursor() as cur:
            cur.execute(f'alter database "{broker_db.name}" allow_connections false')
            cur.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and usename = 'streamer'",
                (broker_db.name,),
            )
        feed.publish(bars[20:])
        time.sleep(6)
        assert proc.poll() is None, log_path.read_text()[-2000:]
        assert "database unavailable" in log_path.read_text()
        with admin.cursor() as cur:
            cur.execute(f'alter database "{broker_db.name}" allow_connections true')
        wait_until(
            lambda: (
                broker_db.scalar("select count(*) from raw.feed_messages where symbol like 'DBD%%'")
                == len(bars)
            ),
            120,
            "every bar after the database came back",
        )
    finally:
        with admin.cursor() as cur:
            cur.execute(f'alter database "{broker_db.name}" allow_connections true')
        admin.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    wait_until(lambda: len(staging_rows(broker_db, ["DBD1", "DBD2"])) == 60, 30, "staging")
    pd.testing.assert_frame_equal(staging_rows(broker_db, ["DBD1", "DBD2"]), expected_current(bars))
    moving_averages_match_pandas(broker_db, ["DBD1", "DBD2"])


def create_admin_connection(db: Database) -> psycopg2.extensions.connection:
    env = os.environ.copy()
    env.update(db.env)
    conn = psycopg2.connect(
        host=env.get("PGHOST"),
        port=env.get("PGPORT"),
        user=env.get("PGUSER"),
        password=env.get("PGPASSWORD"),
        dbname="postgres",
    )
    conn.autocommit = True
    return conn


# ---- least privilege --------------------------------------------------------------------------


def test_the_streamer_runs_the_incremental_step_without_rights_on_the_tables(feed_db: Database) -> None:
    conn = feed_db.connect("streamer")
    try:
        with conn.cursor() as cur:
            for table in (
                "staging.stg_market_data__daily_prices",
                "intermediate.int_daily_prices__trading_days",
            ):
                cur.execute(
                    "select has_table_privilege(%s, 'insert'), has_table_privilege(%s, 'delete')",
                    (table, table),
                )
                assert cur.fetchone() == (False, False), table
            cur.execute("select has_table_privilege('raw.feed_bars', 'delete')")
            assert cur.fetchone() == (False,)
            cur.execute(
                "select * from staging.stg_market_data__daily_prices__apply(p_symbols => array['NONE'])"
            )
            assert cur.fetchone() is not None
    finally:
        conn.close()
    reader = feed_db.connect("reader")
    try:
        with reader.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select * from staging.stg_market_data__daily_prices__apply()")
    finally:
        reader.close()


def test_the_feed_finds_its_routines_in_the_package_list_and_says_what_is_missing(
    feed_db: Database, fresh_db: Database, server_license: str | None
) -> None:
    """One read of staging.incremental_routines gives the consumer its routines; a database
    dbt never built, or a role that may not run them, gets one line saying what to do."""
    streamer = feed_db.connect("streamer")
    try:
        found = incremental.registered_routines(streamer)
        assert found.staging() == "staging.stg_market_data__daily_prices__apply"
        # in the order dbt first built them: a routine after those whose rows it reads (the
        # spans read the first days and the trading days, the screener the trading days)
        upstream = found.of("upstream_changes")
        assert sorted(upstream) == [
            "intermediate.int_daily_prices__symbol_firsts__apply",
            "intermediate.int_daily_prices__symbol_spans__apply",
            "intermediate.int_daily_prices__trading_days__apply",
            "marts.fct_latest_day__apply",
        ]
        position = {name.split(".")[1].removesuffix("__apply"): upstream.index(name) for name in upstream}
        assert position["int_daily_prices__symbol_firsts"] < position["int_daily_prices__symbol_spans"]
        assert position["int_daily_prices__trading_days"] < position["int_daily_prices__symbol_spans"]
        assert position["int_daily_prices__trading_days"] < position["fct_latest_day"]
        incremental.check_functions(streamer)
        # Period marts that are tables (all on the apache edition; months, quarters and years on
        # the community one) the streamer applies; a continuous aggregate's (the community
        # edition's weeks) refresh needs its owner, so dbt build refreshes those.
        period_tables = found.of("period_table")
        assert len(period_tables) == (3 if server_license == "timescale" else 4)
        assert incremental.apply_period_marts(streamer) == len(period_tables)
    finally:
        streamer.close()
    reader = feed_db.connect("reader")
    try:
        with pytest.raises(
            incremental.IncrementalStepMissing, match=r"role reader may not .* the streamer role"
        ):
            incremental.check_functions(reader)
    finally:
        reader.close()
    never_built = fresh_db.connect()
    try:
        with pytest.raises(incremental.IncrementalStepMissing, match="does not exist: build the models once"):
            incremental.check_functions(never_built)
    finally:
        never_built.close()


# ---- incremental equals a full rebuild ---------------------------------------------------------


def test_a_full_rebuild_equals_what_the_feed_built_batch_by_batch(feed_db: Database) -> None:
    """Runs last in this module: every bar the tests above fed (revisions, re-sends, a file
    beside the feed, a replace) rebuilt from raw by `dbt build --full-refresh` gives the same
    staging rows and trading days as the consumer's incremental steps did."""
    staging = (
        "select symbol, trade_date, open, high, low, close, adj_close, volume, load_id, line_number "
        "from staging.stg_market_data__daily_prices order by symbol, trade_date"
    )
    days = (
        "select symbol, trade_date, trading_day_number, sma_20, sma_30, sma_50, sma_200 "
        "from intermediate.int_daily_prices__trading_days order by symbol, trade_date"
    )
    fed_staging, fed_days = feed_db.frame(staging), feed_db.frame(days)
    assert fed_staging["symbol"].nunique() >= 10
    build = feed_db.dbt(
        "build",
        "--full-refresh",
        "-s",
        "stg_market_data__daily_prices",
        "int_daily_prices__trading_days",
        "--exclude",
        "test_type:data",
    )
    assert build.returncode == 0, build.stdout[-3000:]
    pd.testing.assert_frame_equal(feed_db.frame(staging), fed_staging)
    pd.testing.assert_frame_equal(feed_db.frame(days), fed_days, rtol=1e-12)
