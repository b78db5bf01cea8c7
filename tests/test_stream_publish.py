"""The publisher: replay order and revisions, the seeded random walk, the command line."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path

import pytest

from devtools.nats import NatsServer
from devtools.ports import free_port
from stream import publish
from stream.broker import BrokerSettings, connect
from stream.messages import BadMessage, decode_bar
from tests.stream_support import nats_server_fixture  # noqa: F401 (`nats_server`)

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def kaggle_folder(tmp_path: Path) -> Path:
    root = tmp_path / "dataset"
    write(
        root / "stocks" / "AAA.csv",
        [
            "2020-01-02,1.0,1.5,0.5,1.25,1.2,100",
            "2020-01-03,1.25,2,1,1.75,1.7,200",
            "",  # blank: skipped
            "2020-01-06,2,2,2,2,2,",  # empty volume: null
            "2020-01-03,1.25,2,1,1.80,1.75,250",  # a correction: revision 1 of 2020-01-03
            "2020/01/07,3,3,3,3,3,300",  # not YYYY-MM-DD: still sent, the consumer rejects it
            "2020-01-08,3,3",  # wrong field count: skipped
        ],
    )
    write(
        root / "etfs" / "BBB.csv", ["2020-01-02,10,11,9,10.5,10.5,1000", "2020-01-06,11,12,10,11.5,11.5,1100"]
    )
    (root / "symbols_valid_meta.csv").write_text("Nasdaq Traded,Symbol\nY,AAA\n")  # not prices: ignored
    return root


def decoded(items) -> list[tuple]:
    return [
        (body["symbol"], body["date"], body["revision"], body["close"], msg_id)
        for _, payload, msg_id in items
        for body in [json.loads(payload)]
    ]


def test_replay_merges_files_by_date_with_revisions(kaggle_folder):
    total, items, skipped, skipped_files = publish.replay_messages(kaggle_folder)
    rows = decoded(items)
    assert rows == [
        # discovery lists stocks/ before etfs/; a day's bars follow that file order
        ("AAA", "2020-01-02", 0, "1.25", "AAA:2020-01-02:0"),
        ("BBB", "2020-01-02", 0, "10.5", "BBB:2020-01-02:0"),
        ("AAA", "2020-01-03", 0, "1.75", "AAA:2020-01-03:0"),
        ("AAA", "2020-01-06", 0, "2", "AAA:2020-01-06:0"),
        # a file's own order is kept: its late correction leaves as soon as it is next in line
        ("AAA", "2020-01-03", 1, "1.80", "AAA:2020-01-03:1"),
        ("BBB", "2020-01-06", 0, "11.5", "BBB:2020-01-06:0"),
        ("AAA", "2020/01/07", 0, "3", "AAA:2020/01/07:0"),
    ]
    assert (total, skipped, skipped_files) == (7, [1], 0)


def test_replay_sends_values_as_written(kaggle_folder):
    _, items, _, _ = publish.replay_messages(kaggle_folder / "stocks" / "AAA.csv", prefix="feed")
    first = next(items)
    assert first[0] == "feed.AAA"
    assert json.loads(first[1]) == {
        "v": 1,
        "symbol": "AAA",
        "date": "2020-01-02",
        "revision": 0,
        "open": "1.0",
        "high": "1.5",
        "low": "0.5",
        "close": "1.25",
        "adj_close": "1.2",
        "volume": "100",
    }
    empty_volume = [json.loads(p) for _, p, _ in items if b"2020-01-06" in p]
    assert empty_volume[0]["volume"] is None


def test_replay_into_a_real_stream(kaggle_folder, nats_server):
    summary = publish.replay_summary(BrokerSettings(url=nats_server.url), kaggle_folder)
    assert (summary.bars, summary.skipped_lines) == (7, 1)
    assert "published 7 bars" in summary.line()

    async def read_back():
        broker = await connect(BrokerSettings(url=nats_server.url))
        batch = await broker.fetch(100, 1.0)
        await broker.ack(batch)
        await broker.close()
        return batch

    batch = asyncio.run(read_back())
    assert [d.stream_sequence for d in batch] == list(range(1, 8))
    # The stream holds the replay's order; the line with a bad date travels and is refused on decoding.
    _, items, _, _ = publish.replay_messages(kaggle_folder)
    assert [d.data for d in batch] == [payload for _, payload, _ in items]
    bars = [decode_bar(d.data) for d in batch[:6]]
    assert (bars[4].symbol, bars[4].trade_date, bars[4].revision, bars[4].close) == (
        "AAA",
        datetime.date(2020, 1, 3),
        1,
        "1.80",
    )
    with pytest.raises(BadMessage, match="2020/01/07") as caught:
        decode_bar(batch[6].data)
    assert caught.value.reason_code == "unparseable_date"
    # Replayed again: every message id repeats inside the de-dup window, nothing new is stored.
    assert publish.replay(nats_server.url, kaggle_folder) == 7
    stored = asyncio.run(read_back())
    assert stored == []


def test_random_walk_is_deterministic_per_seed():
    walk = list(publish.random_walk_messages(5, seed=7, days=2, revisions=3, start=datetime.date(2024, 1, 5)))
    assert walk == list(
        publish.random_walk_messages(5, seed=7, days=2, revisions=3, start=datetime.date(2024, 1, 5))
    )
    assert walk != list(
        publish.random_walk_messages(5, seed=8, days=2, revisions=3, start=datetime.date(2024, 1, 5))
    )
    bodies = [json.loads(payload) for _, payload, _ in walk]
    assert len(bodies) == 5 * 2 * 3
    # A Friday, then the next business day (Monday); round-robin over the symbols per revision.
    assert sorted({b["date"] for b in bodies}) == ["2024-01-05", "2024-01-08"]
    assert [(b["symbol"], b["revision"]) for b in bodies[:6]] == [
        ("SYM0001", 0),
        ("SYM0002", 0),
        ("SYM0003", 0),
        ("SYM0004", 0),
        ("SYM0005", 0),
        ("SYM0001", 1),
    ]
    day_one = [b for b in bodies if b["symbol"] == "SYM0003" and b["date"] == "2024-01-05"]
    assert [b["revision"] for b in day_one] == [0, 1, 2]
    # The bar evolves during the session: volume grows, the range only widens, open stays.
    assert [int(b["volume"]) for b in day_one] == sorted(int(b["volume"]) for b in day_one)
    assert len({b["open"] for b in day_one}) == 1
    highs, lows = [float(b["high"]) for b in day_one], [float(b["low"]) for b in day_one]
    assert highs == sorted(highs) and lows == sorted(lows, reverse=True)
    for b in bodies:
        assert float(b["low"]) <= float(b["close"]) <= float(b["high"])
        decode_bar(json.dumps(b).encode())  # every message is a valid bar
    day_two_open = next(b for b in bodies if b["symbol"] == "SYM0003" and b["date"] == "2024-01-08")["open"]
    assert day_two_open == day_one[-1]["close"]  # the next day opens at the last close


def test_cli_random_with_rate_and_duration(nats_server, capsys):
    code = publish.main(
        [
            "--random",
            "50",
            "--revisions",
            "1000",
            "--rate",
            "2000",
            "--duration",
            "1",
            "--url",
            nats_server.url,
        ]
    )
    assert code == 0
    line = capsys.readouterr().out.strip()
    sent = int(line.split()[1].replace(",", ""))
    assert 1000 <= sent <= 3000, line  # paced at about 2,000 bars/s for one second


@pytest.mark.parametrize(
    "argv",
    [
        ["--random", "0"],
        ["--random", "3", "--rate", "-5"],
        ["--replay", "x.csv", "--seed", "3"],
        ["--replay", "x.csv", "--random", "3"],
        [],
    ],
)
def test_cli_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as caught:
        publish.main([*argv, "--url", "nats://127.0.0.1:1"])
    assert caught.value.code == 2


def test_cli_exit_codes_for_missing_things(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("STOCK_ANALYTICS_NATS_URL", raising=False)
    monkeypatch.delenv("STOCK_ANALYTICS_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("STOCK_ANALYTICS_STATE_DIR", str(tmp_path))  # no project cluster there
    assert publish.main(["--random", "3"]) == 2
    assert "no Kafka cluster: start the project's with `make stream-up`" in capsys.readouterr().err
    monkeypatch.setenv("STOCK_ANALYTICS_BROKER", "nats")
    assert publish.main(["--random", "3"]) == 2
    assert "STOCK_ANALYTICS_NATS_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("STOCK_ANALYTICS_BROKER", "rabbit")
    assert publish.main(["--random", "3"]) == 2
    assert "pick one of kafka, nats" in capsys.readouterr().err
    assert publish.main(["--replay", str(tmp_path / "nothing"), "--url", "nats://127.0.0.1:1"]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    url = f"nats://127.0.0.1:{free_port()}"
    assert publish.main(["--random", "3", "--url", url, "--wait", "0.5"]) == 1
    assert f"no NATS server answers at {url}" in capsys.readouterr().err


def test_nats_server_helper_restarts_on_the_same_port_and_store():
    server = NatsServer()
    try:
        port = server.port
        server.stop()
        assert not server.running
        server.start()
        assert server.running and server.port == port and server.url.endswith(f":{port}")
        server.kill()
        assert not server.running
    finally:
        server.cleanup()


def test_random_walk_function_returns_the_count(nats_server):
    assert publish.random_walk(nats_server.url, 20, seed=3, days=2, revisions=3) == 120

    async def pending():
        broker = await connect(BrokerSettings(url=nats_server.url))
        try:
            return await broker.pending()
        finally:
            await broker.close()

    assert asyncio.run(pending()) == 120
    # The same seed again: the same message ids inside the de-dup window, nothing new stored.
    assert publish.random_walk(nats_server.url, 20, seed=3, days=2, revisions=3) == 120
    assert asyncio.run(pending()) == 120
