"""One micro-batch of feed messages into the raw layer, exactly once, in one transaction.

The database is the truth: the stream sequences taken go into raw.feed_messages in the same
transaction as the bars, so a redelivered message (a crash before the acknowledgement, a
broker restart) or one re-sent under a new sequence is recognised and skipped, whatever the
broker's de-duplication window. Per (symbol, date) only a revision higher than any taken
before is written (raw.feed_revisions), so the highest revision wins in any order of arrival.
A message that cannot be a bar is kept with its reason in raw.load_rejects, like a rejected
line of a file. The caller acknowledges the batch only after `write_batch` returned.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import psycopg2.extensions

from loader.copy_text import NULL, copy_text, copy_text_row
from stream.messages import BadMessage, Bar, decode_bar

log = logging.getLogger(__name__)

# Every column of the staging table of a batch, in COPY order.
_BATCH_COLUMNS = (
    "position",
    "stream_sequence",
    "published_at",
    "symbol",
    "trade_date",
    "revision",
    "date",
    "open",
    "high",
    "low",
    "close",
    "adj_close",
    "volume",
    "reason_code",
    "reason",
    "message_text",
    "is_candidate",
)
_PRICE_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")


class Delivery(Protocol):
    """What the broker hands over (stream.broker.Delivery has these)."""

    data: bytes
    stream_sequence: int
    published_at: datetime


class FeedSchemaMissing(RuntimeError):
    """The raw layer has no feed tables yet; the message says what to run."""


@dataclass(frozen=True)
class PartitionFence:
    """A Kafka partition's batch: written only while the warehouse's stored next offset of the
    partition still equals `expected` (where this consumer started the batch), and moving it to
    `next_offset` in the same transaction (raw.feed_offsets, loader migration 4)."""

    topic: str  # `bars@<topic id>`
    partition: int
    expected: int
    next_offset: int
    consumer: str


class Fenced(RuntimeError):
    """Another consumer wrote this partition since this one started its batch: nothing was written."""

    def __init__(self, fence: PartitionFence, stored: int | None) -> None:
        super().__init__(
            f"partition {fence.partition}: the warehouse stands at offset {stored}, this batch started "
            f"from {fence.expected}: another consumer of the group took the partition over (this one "
            "stalled past its session timeout, or a rebalance moved it); the batch is dropped, "
            "nothing of it written"
        )
        self.stored = stored


@dataclass
class BatchResult:
    """What one batch did. `load_id` is None when every message was already taken."""

    load_id: int | None = None
    received: int = 0
    already_taken: int = 0
    applied: int = 0
    stale: int = 0
    rejected: int = 0
    symbols: list[str] = field(default_factory=list)


def feed_path(stream: str, scheme: str = "jetstream") -> str:
    """What raw.load_log calls a feed's loads (file_path), e.g. kafka://bars@<topic id>/3."""
    return f"{scheme}://{stream}"


def check_schema(conn: psycopg2.extensions.connection) -> None:
    """Fail early, and clearly, when the loader's migration 3 has not run on this database."""
    with conn, conn.cursor() as cur:
        cur.execute("select to_regclass('raw.feed_messages') is not null")
        if not cur.fetchone()[0]:
            raise FeedSchemaMissing(
                "the raw layer has no live-feed tables (raw.feed_messages): run the loader once "
                "(python loader/copy_csv.py <folder>, or make load) so it applies its migrations"
            )


def write_batch(
    conn: psycopg2.extensions.connection,
    stream: str,
    deliveries: Sequence[Delivery],
    fence: PartitionFence | None = None,
    scheme: str = "jetstream",
) -> BatchResult:
    """Take the messages not taken before; commit bars, ledger and rejects together (and, for a
    Kafka partition, its next offset behind the fence: raises Fenced, writing nothing)."""
    result = BatchResult(received=len(deliveries))
    if not deliveries:
        return result
    with conn, conn.cursor() as cur:
        if fence is not None:
            _pass_fence(cur, fence)
        # One writer per stream at a time: two consumers given the same redelivered message
        # must not both find it new.
        cur.execute("select pg_advisory_xact_lock(hashtext('raw.feed_messages/' || %s))", (stream,))
        # The joins below are of a few thousand rows each: hashed, never a nested loop over an
        # estimate the planner cannot make for a statement's own RETURNING rows.
        cur.execute("set local enable_nestloop = off")
        unique = {delivery.stream_sequence: delivery for delivery in reversed(deliveries)}
        # The range lets the lookup use both columns of the primary key (psycopg2 sends a list
        # as integer[]: without the cast and the range, every ledger row of the stream is
        # compared with the array, seconds a batch once the ledger holds 100,000 rows).
        cur.execute(
            "select stream_sequence from raw.feed_messages where stream = %s"
            " and stream_sequence between %s and %s and stream_sequence = any(%s::bigint[])",
            (stream, min(unique), max(unique), list(unique)),
        )
        for (taken,) in cur.fetchall():
            del unique[taken]
        result.already_taken = len(deliveries) - len(unique)
        if not unique:
            return result

        cur.execute(
            """
            insert into raw.load_log (source_key, file_path, file_kind, status, started_at)
            values ('feed/' || split_part(%(stream)s, '@', 1), %(path)s, 'feed', 'loaded', clock_timestamp())
            returning load_id
            """,
            {"stream": stream, "path": feed_path(stream, scheme)},
        )
        load_id = cur.fetchone()[0]
        result.load_id = load_id
        _fill_batch_table(cur, sorted(unique.values(), key=lambda delivery: delivery.stream_sequence))
        # Per (symbol, date) the batch's candidate (its highest revision, the first sequence on
        # a tie) takes the place of an earlier revision only when it is higher; the bars that
        # won are written, and every message goes into the ledger with its outcome.
        cur.execute(
            """
            with won as (
                insert into raw.feed_revisions as stored (symbol, trade_date, revision, load_id)
                select symbol, trade_date, revision, %(load_id)s from pg_temp.feed_batch
                where is_candidate
                on conflict (symbol, trade_date) do update
                    set revision = excluded.revision, load_id = excluded.load_id
                    where excluded.revision > stored.revision
                returning symbol, trade_date
            ),

            written as (
                insert into raw.feed_bars (load_id, stream_sequence, symbol, revision, date,
                                           open, high, low, close, adj_close, volume)
                select %(load_id)s, batch.stream_sequence, batch.symbol, batch.revision, batch.date,
                       batch.open, batch.high, batch.low, batch.close, batch.adj_close, batch.volume
                from pg_temp.feed_batch as batch
                inner join won on batch.symbol = won.symbol and batch.trade_date = won.trade_date
                where batch.is_candidate
                returning stream_sequence
            ),

            rejected as (
                insert into raw.load_rejects (load_id, line_number, raw_line, reason_code, reason)
                select %(load_id)s, position, message_text, reason_code,
                       rtrim(reason, '.') || ' (stream ' || %(stream)s
                       || ', sequence ' || stream_sequence || ')'
                from pg_temp.feed_batch where reason_code is not null
                returning 1
            ),

            ledger as (
                insert into raw.feed_messages (stream, stream_sequence, load_id, outcome, symbol,
                                               trade_date, revision, published_at)
                select %(stream)s, batch.stream_sequence, %(load_id)s,
                       case when batch.reason_code is not null then 'rejected'
                            when written.stream_sequence is not null then 'applied' else 'stale' end,
                       batch.symbol, batch.trade_date, batch.revision, batch.published_at
                from pg_temp.feed_batch as batch
                left join written on batch.stream_sequence = written.stream_sequence
                returning outcome, symbol
            )

            select count(*) filter (where outcome = 'applied'),
                   count(*) filter (where outcome = 'stale'),
                   count(*) filter (where outcome = 'rejected'),
                   coalesce(array_agg(distinct symbol) filter (where outcome = 'applied'), '{}')
            from ledger
            """,
            {"stream": stream, "load_id": load_id},
        )
        result.applied, result.stale, result.rejected, result.symbols = cur.fetchone()
        # rows_loaded: the messages taken as bars (applied, or stale: kept in the ledger only).
        cur.execute(
            """
            update raw.load_log
               set rows_read = %(read)s, rows_loaded = %(loaded)s, rows_rejected = %(rejected)s,
                   finished_at = clock_timestamp()
             where load_id = %(load_id)s
            """,
            {
                "read": len(unique),
                "loaded": result.applied + result.stale,
                "rejected": result.rejected,
                "load_id": load_id,
            },
        )
    return result


def _pass_fence(cur: psycopg2.extensions.cursor, fence: PartitionFence) -> None:
    # The row lock taken here is held to the commit: a second writer of the partition waits,
    # then finds the offset this batch moved it to.
    cur.execute(
        """
        update raw.feed_offsets
           set next_offset = %(next)s, updated_by = %(consumer)s, updated_at = clock_timestamp()
         where topic = %(topic)s and partition = %(partition)s and next_offset = %(expected)s
        """,
        {
            "next": fence.next_offset,
            "consumer": fence.consumer,
            "topic": fence.topic,
            "partition": fence.partition,
            "expected": fence.expected,
        },
    )
    if cur.rowcount == 1:
        return
    cur.execute(
        "select next_offset from raw.feed_offsets where topic = %s and partition = %s",
        (fence.topic, fence.partition),
    )
    row = cur.fetchone()
    raise Fenced(fence, row[0] if row else None)


def stored_offsets(
    conn: psycopg2.extensions.connection,
    topic: str,
    first_kept: dict[int, int],
    consumer: str,
    skip_to_retained: bool = False,
) -> dict[int, int]:
    """The next offset of each partition (keys of `first_kept`: the topic's first retained
    offset of each); a partition the warehouse never took starts at its first retained offset.
    `skip_to_retained` moves offsets the topic no longer keeps up to it (after the missing days
    were loaded from files), logging each."""
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            insert into raw.feed_offsets (topic, partition, next_offset, updated_by)
            select %(topic)s, partition, next_offset, %(consumer)s
            from unnest(%(partitions)s::integer[], %(offsets)s::bigint[]) as kept (partition, next_offset)
            on conflict (topic, partition) do nothing
            """,
            {
                "topic": topic,
                "partitions": list(first_kept),
                "offsets": list(first_kept.values()),
                "consumer": consumer,
            },
        )
        cur.execute(
            "select partition, next_offset from raw.feed_offsets where topic = %s and partition = any(%s)",
            (topic, list(first_kept)),
        )
        stored = dict(cur.fetchall())
        if skip_to_retained:
            for partition, offset in sorted(stored.items()):
                if offset < first_kept[partition]:
                    log.warning(
                        "partition %d: skipping offsets %d to %d, which the topic no longer keeps",
                        partition,
                        offset,
                        first_kept[partition] - 1,
                    )
                    cur.execute(
                        "update raw.feed_offsets set next_offset = %s, updated_by = %s,"
                        " updated_at = clock_timestamp() where topic = %s and partition = %s",
                        (first_kept[partition], consumer, topic, partition),
                    )
                    stored[partition] = first_kept[partition]
    return stored


def _fill_batch_table(cur: psycopg2.extensions.cursor, deliveries: Sequence[Delivery]) -> None:
    """The batch's new messages, decoded, in a temporary table; per (symbol, date) the one
    with the highest revision (the first on a tie) marked as the candidate."""
    cur.execute(
        """
        create temporary table if not exists feed_batch (
            position        integer primary key,
            stream_sequence bigint not null,
            published_at    timestamptz,
            symbol          text,
            trade_date      date,
            revision        integer,
            date            text,
            open            text,
            high            text,
            low             text,
            close           text,
            adj_close       text,
            volume          text,
            reason_code     text,
            reason          text,
            message_text    text,
            is_candidate    boolean not null
        ) on commit delete rows
        """
    )
    rows: list[tuple[int, Delivery, Bar | None, BadMessage | None]] = []
    candidates: dict[tuple[str, object], int] = {}
    for position, delivery in enumerate(deliveries, start=1):
        try:
            bar, bad = decode_bar(delivery.data), None
        except BadMessage as error:
            bar, bad = None, error
        rows.append((position, delivery, bar, bad))
        if bar is not None:
            key = (bar.symbol, bar.trade_date)
            best = candidates.get(key)
            if best is None or bar.revision > rows[best - 1][2].revision:  # type: ignore[union-attr]
                candidates[key] = position
    chosen = set(candidates.values())
    buffer = io.StringIO()
    for position, delivery, bar, bad in rows:
        buffer.write(_copy_line(position, delivery, bar, bad, position in chosen))
    buffer.seek(0)
    cur.copy_expert(f"copy pg_temp.feed_batch ({', '.join(_BATCH_COLUMNS)}) from stdin", buffer)
    cur.execute("analyze pg_temp.feed_batch")


def _copy_line(
    position: int, delivery: Delivery, bar: Bar | None, bad: BadMessage | None, is_candidate: bool
) -> str:
    published = delivery.published_at.isoformat() if delivery.published_at else None
    if bar is None:
        row: list[object] = [position, delivery.stream_sequence, published]
        row += [None] * (4 + len(_PRICE_FIELDS))
        row += [bad.reason_code, bad.reason] if bad else [None, None]
        row += [delivery.data.decode("utf-8", errors="replace"), "t" if is_candidate else "f"]
        return copy_text_row(row)
    # A decoded bar's fields need no escaping but its symbol's: decode_bar let through only
    # numbers for the prices, a date, a whole revision (the line is built a message at a time:
    # escaping every field cost about a third of the batch's Python).
    day = bar.trade_date.isoformat()
    prices = "\t".join(
        NULL if value is None else value for value in (getattr(bar, name) for name in _PRICE_FIELDS)
    )
    return (
        f"{position}\t{delivery.stream_sequence}\t{published or NULL}\t{copy_text(bar.symbol)}\t{day}\t"
        f"{bar.revision}\t{day}\t{prices}\t{NULL}\t{NULL}\t{NULL}\t{'t' if is_candidate else 'f'}\n"
    )
