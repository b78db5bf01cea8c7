"""The warehouse's incremental step, run for the feed: the same routines `dbt build` creates
and calls (the package packages/timescale_incremental), so the rules exist once.

Which routines: the package lists them in the database (staging.incremental_routines: per
model its routine and apply strategy), so nothing here guesses a name. Staging's raw_loads
routine applies the pending loads (the feed's, and any file load of the touched symbols), the
upstream_changes routines (the trading days) then recompute the changed symbols from their first
changed date (the running sums and moving averages of marts.fct_daily_moving_averages). The
period marts follow less often (`apply_period_marts`): as tables (every one on the apache
edition, the variable-width ones on the community edition) their `period_table` routine may be
run by the streamer; as continuous aggregates (the community edition's weekly mart) their
refresh needs the owner, so `dbt build` (make refresh) refreshes them, and real-time
aggregation shows the feed's newer buckets meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import psycopg2.errors
import psycopg2.extensions

log = logging.getLogger(__name__)

# Where the package keeps its list (dbt_project.yml: var incremental_bookkeeping_schema).
ROUTINES = "staging.incremental_routines"
BUILD_ONCE = "build the models once (dbt build, or make build) before starting the consumer"


class IncrementalStepMissing(RuntimeError):
    """dbt has not built the incremental models on this database yet."""


@dataclass
class StepResult:
    loads_applied: int
    staging_rows: int
    symbols_changed: int
    trading_day_rows: int
    symbols_held: int = 0


@dataclass(frozen=True)
class Routines:
    """The routines the package lists, by apply strategy, each in the order dbt first built its
    model (a model after those it reads), with whether the connected role may run it."""

    by_strategy: dict[str, list[str]]
    missing: frozenset[str]  # listed, but not in the database
    executable: frozenset[str]

    def of(self, strategy: str) -> list[str]:
        return self.by_strategy.get(strategy, [])

    def staging(self) -> str:
        found = self.of("raw_loads")
        if len(found) != 1:
            raise IncrementalStepMissing(f"{ROUTINES} lists {len(found)} raw_loads routines: {BUILD_ONCE}")
        return found[0]


def registered_routines(conn: psycopg2.extensions.connection) -> Routines:
    """One read of the package's list."""
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"""select strategy, routine, to_regproc(routine) is not null,
                    coalesce(has_function_privilege(to_regproc(routine), 'execute'), false)
                from {ROUTINES}
                order by registered_at, relation_name"""
            )
            rows = cur.fetchall()
    except psycopg2.errors.UndefinedTable:
        raise IncrementalStepMissing(f"{ROUTINES} does not exist: {BUILD_ONCE}") from None
    except psycopg2.errors.InsufficientPrivilege:
        raise IncrementalStepMissing(_use_the_streamer(conn, f"read {ROUTINES}")) from None
    by_strategy: dict[str, list[str]] = {}
    for strategy, routine, _, _ in rows:
        by_strategy.setdefault(strategy, []).append(routine)
    return Routines(
        by_strategy,
        missing=frozenset(routine for _, routine, exists, _ in rows if not exists),
        executable=frozenset(routine for _, routine, _, allowed in rows if allowed),
    )


def routines(conn: psycopg2.extensions.connection, strategy: str) -> list[str]:
    """The routines of one apply strategy, in the order dbt last built their models."""
    return registered_routines(conn).of(strategy)


def staging_routine(conn: psycopg2.extensions.connection) -> str:
    return registered_routines(conn).staging()


def check_functions(conn: psycopg2.extensions.connection) -> None:
    """The feed's routines exist and the connected role may run them, or one line says what to do."""
    found = registered_routines(conn)
    for name in [found.staging(), *found.of("upstream_changes")]:
        if name in found.missing:
            raise IncrementalStepMissing(f"{name}() does not exist: {BUILD_ONCE}")
        if name not in found.executable:
            raise IncrementalStepMissing(_use_the_streamer(conn, f"run {name}()"))


def _use_the_streamer(conn: psycopg2.extensions.connection, action: str) -> str:
    with conn, conn.cursor() as cur:
        cur.execute("select current_user")
        (role,) = cur.fetchone()
    return (
        f"role {role} may not {action}: connect as the streamer role "
        '(eval "$(make -s env ROLE=streamer)"), and build the models once more with '
        "dbt build (it grants the streamer what the feed needs: var live_feed_role)"
    )


def apply_changes(
    conn: psycopg2.extensions.connection, symbols: Sequence[str], feed_paths: Sequence[str] | None = None
) -> StepResult:
    """Staging, then the models fed by its change log; each its own transaction (a crash
    between them leaves the later changes pending, and the next unscoped call applies them).

    With `feed_paths` (a Kafka consumer's partitions) the step is scoped: staging applies those
    feeds' pending loads and the file loads of `symbols`, each later model the changes this
    step wrote, and concurrent scoped steps of other partitions run side by side. The caller
    must keep two steps on the same partitions apart (`partition_locks`), and run
    `apply_pending` once it takes partitions over (what a crash left between the models)."""
    found = registered_routines(conn)
    staging = found.staging()
    writer_xids: list[str] = []
    with conn, conn.cursor() as cur:
        cur.execute(
            f"select loads_applied, rows_written, symbols_held"
            f" from {staging}(p_symbols => %s, p_feed_paths => %s)",
            (list(symbols), None if feed_paths is None else list(feed_paths)),
        )
        loads_applied, staging_rows, symbols_held = cur.fetchone()
        writer_xids += _writer_xid(cur)
    if symbols_held:
        # The price guard held them back, as a file load's would be: out of the marts until a
        # person accepts them (docs/data_quality.md "The price guard").
        log.warning(
            "price guard: %d symbol(s) of this batch held back (staging.stg_market_data__held_prices); "
            "accept with: dbt build --vars '{accept_held_prices: [SYMBOL, ...]}'",
            symbols_held,
        )
    scoped = feed_paths is not None
    symbols_changed = trading_day_rows = 0
    for routine in found.of("upstream_changes"):
        if scoped and not writer_xids:
            break  # the step wrote nothing: nothing for the later models either
        with conn, conn.cursor() as cur:
            # names from the package's list, not from input
            if scoped:
                cur.execute(f"select * from {routine}(p_writer_xids => %s::xid8[])", (writer_xids,))
            else:
                cur.execute(f"select * from {routine}()")
            changed, rows = cur.fetchone()
            writer_xids += _writer_xid(cur)
        symbols_changed, trading_day_rows = symbols_changed + changed, trading_day_rows + rows
    return StepResult(loads_applied, staging_rows, symbols_changed, trading_day_rows, symbols_held)


def apply_pending(conn: psycopg2.extensions.connection) -> int:
    """The models fed by staging's change log apply everything pending (unscoped: they wait
    for the scoped steps in flight, and new ones wait for them); returns the symbols changed."""
    changed_total = 0
    for routine in registered_routines(conn).of("upstream_changes"):
        with conn, conn.cursor() as cur:
            cur.execute(f"select symbols_changed from {routine}()")  # names from the package's list
            changed_total += cur.fetchone()[0]
    return changed_total


def _writer_xid(cur: psycopg2.extensions.cursor) -> list[str]:
    """The transaction's id, when it wrote anything (its change-log rows carry it)."""
    cur.execute("select pg_current_xact_id_if_assigned()::text")
    (xid,) = cur.fetchone()
    return [] if xid is None else [xid]


@contextlib.contextmanager
def partition_locks(conn: psycopg2.extensions.connection, feed_paths: Sequence[str]) -> Iterator[list[str]]:
    """The feeds' step locks (session advisory locks), each tried, never waited for: a consumer
    that lost a partition in a rebalance and the one that took it over never run its step at
    once, and one stalled mid-step (its locks held) does not stall the other's other partitions.
    Yields the feeds whose lock was taken."""
    taken: list[str] = []
    try:
        with conn, conn.cursor() as cur:
            for key in sorted(set(feed_paths)):
                cur.execute("select pg_try_advisory_lock(hashtext('stream.feed_step/' || %s))", (key,))
                if cur.fetchone()[0]:
                    taken.append(key)
        yield taken
    finally:
        with contextlib.suppress(psycopg2.Error), conn, conn.cursor() as cur:
            for key in taken:
                cur.execute("select pg_advisory_unlock(hashtext('stream.feed_step/' || %s))", (key,))


def apply_period_marts(conn: psycopg2.extensions.connection) -> int:
    """Bring the period marts that are tables up to date, those the connected role may (a
    continuous aggregate's refresh needs its owner); returns how many were applied."""
    found = registered_routines(conn)
    functions = [routine for routine in found.of("period_table") if routine in found.executable]
    for function in functions:
        with conn, conn.cursor() as cur:
            cur.execute(f"select * from {function}()")  # names from the package's list, not from input
    return len(functions)
