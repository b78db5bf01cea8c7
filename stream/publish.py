"""Publish daily bars to the feed: a replay of CSV files, or a seeded random walk.

    python stream/publish.py --replay data/sample [--rate 1000]
    python stream/publish.py --random 8000 [--seed 7] [--days 1] [--revisions 300] [--rate 8000]
        [--duration 300]

Replay: PATH is one Yahoo-layout CSV (Date,Open,High,Low,Close,Adj Close,Volume; the symbol is the
file name) or a Kaggle-layout folder (stocks/*.csv, etfs/*.csv). Values are sent as written. The
files are merged by date (every symbol's day d before day d+1) while streaming: each file is read
once to count its lines and find repeated dates, then all are read side by side. A date a file
holds twice is sent twice, the later line with the higher revision, so it wins as in the file
loader. Lines whose date is not YYYY-MM-DD are sent too (the consumer sets them aside with the
reason); blank lines are skipped, lines with the wrong number of fields are skipped and counted.

Random: N symbols SYM0001.. walk from a seeded start; each business day every symbol's bar is
sent `--revisions` times during the session (revision 0, 1, ..: the close moves, high and low
widen, the volume grows), round-robin over the symbols, then the next business day.

Exit status: 0 done, 1 the broker failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import gzip
import heapq
import io
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loader.discovery import DiscoveryError, FileKind, discover
from loader.parsing import PRICES_LAYOUT, is_gzip
from stream.broker import BrokerError
from stream.feed import FeedBroker, connect_feed
from stream.kafka_broker import KafkaBrokerError
from stream.messages import PRICE_FIELDS, encode_fields, raw_message_id, subject_for
from stream.settings import (
    BrokerSettings,
    KafkaSettings,
    SettingsError,
    add_broker_arguments,
    settings_from_arguments,
)

try:
    from tqdm import tqdm
except ModuleNotFoundError:  # progress bars are a nicety
    tqdm = None

log = logging.getLogger("stream.publish")

Item = tuple[str, bytes, str]  # (subject, payload, msg_id), what Broker.publish_many takes
CHUNK = 5000  # unpaced: messages per publish_many call (the duration is checked between them)
TICKS_PER_S = 20  # paced: the token bucket refills this often
FILE_BUFFER_BYTES = 16 << 10
HEADER_KEY = tuple(h.casefold() for h in PRICES_LAYOUT.header)


@dataclass(frozen=True)
class PublishSummary:
    bars: int  # messages the broker confirmed
    seconds: float
    skipped_lines: int = 0  # replay: lines with the wrong number of fields
    skipped_files: int = 0  # replay: files without the price header

    @property
    def rate(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = f"published {self.bars:,} bars in {self.seconds:.1f} s ({self.rate:,.0f} bars/s)"
        if self.skipped_lines or self.skipped_files:
            text += f"; skipped {self.skipped_lines:,} malformed lines, {self.skipped_files} files"
        return text


# ---- replay ---------------------------------------------------------------------------------
@dataclass
class _FileScan:
    path: Path
    symbol: str
    rows: int  # data lines that will be sent
    repeated: set[str]  # dates the file holds more than once


def _csv_rows(path: Path) -> Iterator[list[str] | None]:
    """The data lines of a price file as fields (None: wrong field count), header and blank
    lines skipped; raises ValueError when the first line is not the price header."""
    # Every file of a folder is open at once during the merge: small buffers keep that cheap.
    opened = gzip.open(path, "rb") if is_gzip(path) else path.open("rb", buffering=FILE_BUFFER_BYTES)  # noqa: SIM115
    with opened as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None or tuple(f.strip().lstrip("\ufeff").casefold() for f in header) != HEADER_KEY:
            raise ValueError(f"{path}: first line is {header!r}, not the price header")
        for fields in reader:
            if not fields or not any(f.strip() for f in fields):
                continue
            yield fields if len(fields) == PRICES_LAYOUT.field_count else None


def _scan(path: Path, symbol: str) -> _FileScan:
    counts: Counter[str] = Counter()
    rows = 0
    for fields in _csv_rows(path):
        if fields is not None:
            rows += 1
            counts[fields[0].strip()] += 1
    return _FileScan(path, symbol, rows, {date for date, n in counts.items() if n > 1})


def _file_items(
    scan: _FileScan, order: int, prefix: str, skipped: list[int]
) -> Iterator[tuple[str, int, Item]]:
    """(date key, file order, item) for one file, in file order."""
    seen: Counter[str] = Counter()
    subject = subject_for(scan.symbol, prefix)
    for fields in _csv_rows(scan.path):
        if fields is None:
            skipped[0] += 1
            continue
        date_text = fields[0].strip()
        revision = 0
        if date_text in scan.repeated:  # only repeated dates need counting
            revision = seen[date_text]
            seen[date_text] += 1
        values = {
            name: (value if value.strip() else None)
            for name, value in zip(PRICE_FIELDS, fields[1:], strict=True)
        }
        payload = encode_fields(scan.symbol, date_text, revision, values)
        yield date_text, order, (subject, payload, raw_message_id(scan.symbol, date_text, revision))


def replay_messages(path: str | Path, prefix: str = "bars") -> tuple[int, Iterator[Item], list[int], int]:
    """(total bars, the items in date order, [skipped lines so far], skipped files) for PATH.

    Reads each file once up front (line count, repeated dates), then merges the files lazily:
    memory holds one pending line per file, not the data."""
    sources = [s for s in discover([str(path)]) if s.kind is FileKind.PRICES]
    if not sources:
        raise DiscoveryError(f"{path}: no price files (only symbol metadata?).")
    scans: list[_FileScan] = []
    skipped_files = 0
    for source in sources:
        try:
            scans.append(_scan(source.path, source.symbol or source.path.stem))
        except (ValueError, OSError, EOFError) as exc:
            log.warning("skipping %s", exc)
            skipped_files += 1
    skipped = [0]
    streams = [_file_items(scan, order, prefix, skipped) for order, scan in enumerate(scans)]
    # Key: the date text (ISO dates sort as text), then the file's place, so one day of all
    # symbols goes out before the next; heapq.merge keeps a file's own order for equal keys.
    merged = (item for _, _, item in heapq.merge(*streams, key=lambda entry: (entry[0], entry[1])))
    return sum(s.rows for s in scans), merged, skipped, skipped_files


# ---- random walk ----------------------------------------------------------------------------
def _business_days(start: datetime.date) -> Iterator[datetime.date]:
    day = start
    while True:
        if day.weekday() < 5:
            yield day
        day += datetime.timedelta(days=1)


def random_walk_messages(
    symbols: int,
    *,
    seed: int = 0,
    days: int | None = 1,
    revisions: int = 1,
    start: datetime.date = datetime.date(2024, 1, 2),
    prefix: str = "bars",
) -> Iterator[Item]:
    """The seeded feed: `days` business days (None: without end) of `revisions` versions of every
    symbol's bar, round-robin over the symbols within a revision."""
    rng = random.Random(seed)
    names = [f"SYM{i:04d}" for i in range(1, symbols + 1)]
    subjects = [subject_for(name, prefix) for name in names]
    closes = [rng.uniform(10, 500) for _ in names]
    for number, day in enumerate(_business_days(start)):
        if days is not None and number >= days:
            return
        date_text = day.isoformat()
        opens = list(closes)
        highs, lows = list(opens), list(opens)
        volumes = [0] * symbols
        for revision in range(revisions):
            for i, name in enumerate(names):
                close = max(0.01, closes[i] * (1 + rng.gauss(0, 0.004)))
                closes[i] = close
                highs[i] = max(highs[i], close)
                lows[i] = min(lows[i], close)
                volumes[i] += rng.randint(100, 10_000)
                values = {
                    "open": f"{opens[i]:.4f}",
                    "high": f"{highs[i]:.4f}",
                    "low": f"{lows[i]:.4f}",
                    "close": f"{close:.4f}",
                    "adj_close": f"{close:.4f}",
                    "volume": str(volumes[i]),
                }
                payload = encode_fields(name, date_text, revision, values)
                yield subjects[i], payload, raw_message_id(name, date_text, revision)


# ---- sending --------------------------------------------------------------------------------
def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def send(
    broker: FeedBroker,
    items: Iterable[Item],
    *,
    rate: float | None = None,
    duration: float | None = None,
    total: int | None = None,
    progress: bool = False,
) -> tuple[int, float]:
    """Publish items, paced at `rate` bars/s (a token bucket refilled TICKS_PER_S times a
    second; None: as fast as the broker confirms), stopping after `duration` seconds.
    Returns (bars confirmed, seconds)."""
    size = max(1, int(rate / TICKS_PER_S)) if rate else CHUNK
    bar = tqdm(total=total, unit="bar", unit_scale=True, disable=not progress) if tqdm else None
    started = time.monotonic()
    sent = 0
    try:
        for chunk in _chunks(items, size):
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            if rate:
                due = started + sent / rate  # when the bucket holds this chunk's tokens
                if due > now:
                    await asyncio.sleep(due - now)
            sent += await broker.publish_many(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return sent, time.monotonic() - started


def _publish(
    settings: BrokerSettings | KafkaSettings,
    items: Iterable[Item],
    *,
    total: int | None,
    rate: float | None,
    duration: float | None,
    progress: bool,
    wait_s: float | None,
) -> tuple[int, float]:
    """send() over a connection of its own, the stream created if missing: (bars, seconds)."""

    async def run() -> tuple[int, float]:
        broker = await connect_feed(settings, wait_s=wait_s)
        try:
            await broker.ensure_stream()
            return await send(broker, items, rate=rate, duration=duration, total=total, progress=progress)
        finally:
            await broker.close()

    return asyncio.run(run())


def _settings(broker: str | BrokerSettings | KafkaSettings) -> BrokerSettings | KafkaSettings:
    """Settings as given, or a NATS URL's."""
    return BrokerSettings(url=broker) if isinstance(broker, str) else broker


def replay_summary(
    broker: str | BrokerSettings | KafkaSettings,
    path: str | Path,
    *,
    rate: float | None = None,
    duration: float | None = None,
    progress: bool = False,
    wait_s: float | None = 10.0,
) -> PublishSummary:
    """Replay PATH into the feed at `broker` (a NATS URL or settings); raises DiscoveryError,
    BrokerError, KafkaBrokerError."""
    settings = _settings(broker)
    total, items, skipped, skipped_files = replay_messages(path, settings.subject_prefix)
    bars, seconds = _publish(
        settings, items, total=total, rate=rate, duration=duration, progress=progress, wait_s=wait_s
    )
    return PublishSummary(bars, seconds, skipped[0], skipped_files)


def replay(
    broker: str | BrokerSettings | KafkaSettings, path: str | Path, **options: float | bool | None
) -> int:
    """replay_summary(...).bars: how many bars the broker confirmed."""
    return replay_summary(broker, path, **options).bars  # type: ignore[arg-type]


def random_walk_summary(
    broker: str | BrokerSettings | KafkaSettings,
    symbols: int,
    *,
    seed: int = 0,
    days: int | None = 1,
    revisions: int = 1,
    rate: float | None = None,
    duration: float | None = None,
    progress: bool = False,
    wait_s: float | None = 10.0,
) -> PublishSummary:
    """Publish the seeded random-walk feed to `broker` (a NATS URL or settings); raises
    BrokerError, KafkaBrokerError."""
    settings = _settings(broker)
    items = random_walk_messages(
        symbols, seed=seed, days=days, revisions=revisions, prefix=settings.subject_prefix
    )
    total = symbols * days * revisions if days is not None else None
    bars, seconds = _publish(
        settings, items, total=total, rate=rate, duration=duration, progress=progress, wait_s=wait_s
    )
    return PublishSummary(bars, seconds)


def random_walk(
    broker: str | BrokerSettings | KafkaSettings, symbols: int, **options: float | bool | None
) -> int:
    """random_walk_summary(...).bars: how many bars the broker confirmed."""
    return random_walk_summary(broker, symbols, **options).bars  # type: ignore[arg-type]


# ---- command line ---------------------------------------------------------------------------
def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="stream/publish.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--replay", metavar="PATH", help="a price CSV or a Kaggle-layout folder")
    source.add_argument("--random", metavar="N_SYMBOLS", type=_positive(int), help="random-walk symbols")
    parser.add_argument("--seed", type=int, default=0, help="random walk seed (default 0)")
    parser.add_argument("--days", type=_positive(int), default=None, help="business days (default 1)")
    parser.add_argument("--revisions", type=_positive(int), default=1, help="versions of each bar a day")
    parser.add_argument("--rate", type=_positive(float), default=None, help="bars per second (default: max)")
    parser.add_argument("--duration", type=_positive(float), default=None, help="stop after S seconds")
    add_broker_arguments(parser)
    parser.add_argument(
        "--wait", type=_positive(float), default=10.0, help="seconds to wait for the broker (default 10)"
    )
    args = parser.parse_args(argv)
    if args.replay is not None and (args.days or args.revisions != 1 or args.seed):
        parser.error("--seed, --days and --revisions go with --random")
    if args.random is not None and args.days is None:
        # With --duration alone the random feed runs until the time is up.
        args.days = None if args.duration else 1
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        settings = settings_from_arguments(args)
    except SettingsError as exc:
        print(f"publish.py: {exc}", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty()
    try:
        if args.replay is not None:
            summary = replay_summary(
                settings,
                args.replay,
                rate=args.rate,
                duration=args.duration,
                progress=progress,
                wait_s=args.wait,
            )
        else:
            summary = random_walk_summary(
                settings,
                args.random,
                seed=args.seed,
                days=args.days,
                revisions=args.revisions,
                rate=args.rate,
                duration=args.duration,
                progress=progress,
                wait_s=args.wait,
            )
    except DiscoveryError as exc:
        print(f"publish.py: {exc}", file=sys.stderr)
        return 2
    except (BrokerError, KafkaBrokerError) as exc:
        print(f"publish.py: {exc}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
