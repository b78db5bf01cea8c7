"""End-of-run housekeeping of the raw history: which earlier loads a merge fully covers, what a
replace removed, and the purge of superseded rows once their retention is over.

Each step is set-based over the loads that need it, so it also finishes what an interrupted
run left undone, and none of it decides which row is current: a superseded load only ever
loses rows that a newer live load holds (staging reads live loads and keeps, per symbol and
date, the newest). Deferred from the loads themselves so the raw table needs no index COPY
must keep up: its BRIN index on load_id is summarized here first, then finds one load's rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg2.errors
import psycopg2.extensions

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every loader process.
HOUSEKEEPING_LOCK_KEY = 0x5354_4F44
# Superseded rows stay this long: time to compare a correction with what it replaced, or to
# undo a mistaken --replace (set the old loads' status back to 'loaded'), while a history
# re-downloaded every day keeps at most this many extra copies.
DEFAULT_RETENTION_DAYS = 30
# The text that identifies a row within its symbol's history, per raw table.
ROW_KEYS = {"prices": ("raw.daily_prices", "date"), "symbols": ("raw.symbols_meta", "symbol")}


@dataclass
class Housekeeping:
    loads_superseded: int = 0
    loads_purged: int = 0


def run(conn: psycopg2.extensions.connection, retention_days: int) -> Housekeeping:
    done = Housekeeping()
    with conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_lock(%s)", (HOUSEKEEPING_LOCK_KEY,))
    try:
        _summarize_new_pages(conn)
        done.loads_superseded = _supersede_covered_loads(conn)
        _count_replaced_rows(conn)
        done.loads_purged = _purge_superseded(conn, retention_days)
    finally:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_unlock(%s)", (HOUSEKEEPING_LOCK_KEY,))
    return done


def _summarize_new_pages(conn: psycopg2.extensions.connection) -> None:
    """Summarize the BRIN ranges the loads added, unless autovacuum is on the table: waiting for
    its lock would cancel it after deadlock_timeout (a second), at every run, so that a large
    table's vacuum never finished; its vacuum summarizes those ranges itself, and a range not
    yet summarized is read by every scan, so nothing is missed meanwhile."""
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                """
                lock table raw.daily_prices in share update exclusive mode nowait;
                select brin_summarize_new_values('raw.daily_prices_load_id_brin'::regclass);
                """
            )
    except psycopg2.errors.LockNotAvailable:
        log.debug("raw.daily_prices is being vacuumed: its new BRIN ranges are left to the vacuum")


def _supersede_covered_loads(conn: psycopg2.extensions.connection) -> int:
    """An earlier live load every row of which (by date; by symbol for the metadata) a later
    merge holds is superseded by it: a re-downloaded full history retires the old copy, a
    short file retires nothing."""
    with conn, conn.cursor() as cur:
        # Most merges are a symbol's first load: nothing earlier to cover.
        cur.execute(
            """
            update raw.load_log newer set coverage_checked_at = clock_timestamp()
             where status = 'loaded' and load_mode = 'merge' and coverage_checked_at is null
               and not exists (select from raw.load_log older
                                where older.source_key = newer.source_key and older.status = 'loaded'
                                  and older.load_id < newer.load_id)
            """
        )
        cur.execute(
            """
            select load_id, source_key, file_kind from raw.load_log
             where status = 'loaded' and load_mode = 'merge' and coverage_checked_at is null
             order by load_id
            """
        )
        pending = cur.fetchall()
    superseded = 0
    for load_id, source_key, file_kind in pending:
        table, key = ROW_KEYS[file_kind]  # key: the column that identifies a row in a history
        with conn, conn.cursor() as cur:
            cur.execute(
                f"""
                update raw.load_log older
                   set status = 'superseded', superseded_by = %(newer)s, superseded_at = clock_timestamp()
                 where older.source_key = %(key)s and older.status = 'loaded' and older.load_id < %(newer)s
                   and not exists (
                       select from {table} old_row
                        where old_row.load_id = older.load_id
                          and trim(old_row.{key}) not in (select trim(new_row.{key}) from {table} new_row
                                                          where new_row.load_id = %(newer)s
                                                            and new_row.{key} is not null))
                """,  # table and key come from ROW_KEYS, never from input
                {"newer": load_id, "key": source_key},
            )
            superseded += cur.rowcount
            cur.execute(
                "update raw.load_log set coverage_checked_at = clock_timestamp() where load_id = %s",
                (load_id,),
            )
    return superseded


def _count_replaced_rows(conn: psycopg2.extensions.connection) -> None:
    """For each replace not yet counted: the dates its symbol had before and lost."""
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            select newer.load_id, array_agg(older.load_id)
              from raw.load_log newer
              join raw.load_log older on older.superseded_by = newer.load_id
             where newer.load_mode = 'replace' and newer.file_kind = 'prices'
               and newer.rows_removed is null and newer.status in ('loaded', 'superseded')
             group by newer.load_id
            """
        )
        pending = cur.fetchall()
        cur.execute(
            """
            update raw.load_log set rows_removed = 0
             where load_mode = 'replace' and rows_removed is null and status in ('loaded', 'superseded')
               and not exists (select from raw.load_log older where older.superseded_by = load_log.load_id)
            """
        )
    for load_id, older_ids in pending:
        with conn, conn.cursor() as cur:
            cur.execute(
                """
                with removed as (
                    select distinct trim(date) as day from raw.daily_prices
                     where load_id = any(%(older)s) and trim(date) is not null
                       and trim(date) not in (select trim(date) from raw.daily_prices
                                               where load_id = %(id)s and date is not null)
                )
                update raw.load_log
                   set rows_removed = (select count(*) from removed),
                       removed_first_date = (select min(day) from removed),
                       removed_last_date = (select max(day) from removed)
                 where load_id = %(id)s
                """,
                {"older": older_ids, "id": load_id},
            )


def _purge_superseded(conn: psycopg2.extensions.connection, retention_days: int) -> int:
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            update raw.load_log set purged_at = clock_timestamp()
             where status = 'superseded' and purged_at is null
               and superseded_at <= clock_timestamp() - make_interval(days => %s)
            returning load_id, file_kind
            """,
            (retention_days,),
        )
        purged = cur.fetchall()
        for file_kind, (table, _) in ROW_KEYS.items():
            ids = [load_id for load_id, kind in purged if kind == file_kind]
            if ids:
                cur.execute(f"delete from {table} where load_id = any(%s)", (ids,))
    if purged:
        log.info("purged the raw rows of %d loads superseded over %d days ago", len(purged), retention_days)
    return len(purged)
