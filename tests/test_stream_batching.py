"""How the consumer cuts its micro-batches (--batch-size, --linger, --max-wait), against a
scripted broker: no broker or database. The bounds on time are wide: they tell the two waits
apart (--linger against --max-wait), not how fast a machine is."""

from __future__ import annotations

import asyncio
import time

import pytest

from stream.consume import Consumer, parse_args


class ScriptedBroker:
    """Messages that arrive at given seconds after it is made; a fetch returns once it can fill
    `max_messages` or at its timeout with what has arrived (as the Kafka client's does)."""

    def __init__(self, arrivals: list[float]) -> None:
        self.start = time.monotonic()
        self.pending = sorted(arrivals)

    async def fetch(self, max_messages: int, timeout_s: float) -> list[float]:
        deadline = time.monotonic() + timeout_s
        while True:
            arrived = [at for at in self.pending if at <= time.monotonic() - self.start]
            if len(arrived) >= max_messages or time.monotonic() >= deadline:
                taken = arrived[:max_messages]
                self.pending = self.pending[len(taken) :]
                return taken
            await asyncio.sleep(0.001)


def collect(arrivals: list[float], *arguments: str) -> tuple[list[float], float]:
    """One micro-batch of a consumer with `arguments`, and the seconds it took."""
    consumer = Consumer(ScriptedBroker(arrivals), "bars@test", parse_args(list(arguments)))  # type: ignore[arg-type]
    started = time.monotonic()
    batch = asyncio.run(consumer.collect())
    return batch, time.monotonic() - started


def test_what_waits_is_taken_at_once_not_after_the_whole_wait():
    # 200 messages queued (a step just ended), then one a millisecond for 5 s.
    arrivals = [0.0] * 200 + [n / 1000 for n in range(1, 5000)]
    batch, seconds = collect(arrivals, "--max-wait", "3", "--linger", "0.02")
    assert len(batch) >= 200
    assert seconds < 1.0  # --linger after the first message, not --max-wait
    assert len(batch) < 1000  # and not the messages of the seconds after it


def test_a_quiet_stream_waits_for_its_first_message_then_lingers():
    batch, seconds = collect([0.3, 0.305, 2.5], "--max-wait", "4", "--linger", "0.05")
    assert batch == [0.3, 0.305]  # the message 2.2 s later is left for the next batch
    assert 0.3 <= seconds < 1.5


def test_nothing_comes_within_the_wait():
    batch, seconds = collect([5.0], "--max-wait", "0.3", "--linger", "0.02")
    assert batch == []
    assert 0.3 <= seconds < 2.0


def test_a_full_batch_is_cut_at_its_size():
    batch, seconds = collect([0.0] * 500, "--max-wait", "3", "--linger", "3", "--batch-size", "100")
    assert len(batch) == 100
    assert seconds < 1.0


def test_linger_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exited:
        parse_args(["--linger", "0"])
    assert exited.value.code == 2
    assert "--linger above 0" in capsys.readouterr().err
