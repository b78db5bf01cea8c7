"""The warehouse's incremental step, run for the feed: the same routines `dbt build` creates
and calls (the package packages/timescale_incremental), so the rules exist once.

Which routines: the package lists them in the database (staging.incremental_routines: per
model its routine and apply strategy), so nothing here guesses a name. Staging's raw_loads
routine applies the pending loads (the feed's, and any file load of the touched symbols), the
upstream_changes routines (the trading days) then recompute the changed symbols from their first
changed date (the running sums and moving averages of marts.fct_daily_moving_averages). The
period marts follow less often (`apply_period_marts`): as tables (the apache edition) their
`period_table` routine may be run by the streamer; as continuous aggregates (the community
edition) their refresh needs the owner, so `dbt build` (make refresh) refreshes them, and
real-time aggregation shows the feed's newer buckets meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


def routines(conn: psycopg2.extensions.connection, strategy: str) -> list[str]:
    """The routines of one apply strategy, in the order dbt last built their models."""
    with conn, conn.cursor() as cur:
        cur.execute("select to_regclass(%s) is not null", (ROUTINES,))
        if not cur.fetchone()[0]:
            raise IncrementalStepMissing(f"{ROUTINES} does not exist: {BUILD_ONCE}")
        cur.execute(
            f"select routine from {ROUTINES} where strategy = %s order by registered_at, relation_name",
            (strategy,),
        )
        return [row[0] for row in cur.fetchall()]


def staging_routine(conn: psycopg2.extensions.connection) -> str:
    found = routines(conn, "raw_loads")
    if len(found) != 1:
        raise IncrementalStepMissing(f"{ROUTINES} lists {len(found)} raw_loads routines: {BUILD_ONCE}")
    return found[0]


def check_functions(conn: psycopg2.extensions.connection) -> None:
    names = [staging_routine(conn), *routines(conn, "upstream_changes")]
    with conn, conn.cursor() as cur:
        for name in names:
            cur.execute("select to_regproc(%s) is not null", (name,))
            if not cur.fetchone()[0]:
                raise IncrementalStepMissing(f"{name}() does not exist: {BUILD_ONCE}")
            cur.execute("select has_function_privilege(to_regproc(%s), 'execute'), current_user", (name,))
            allowed, role = cur.fetchone()
            if not allowed:
                raise IncrementalStepMissing(
                    f"role {role} may not run {name}(): connect as the streamer role "
                    '(eval "$(make -s env ROLE=streamer)"), and build the models once more with '
                    "dbt build (it grants EXECUTE to var live_feed_role, default streamer)"
                )


def apply_changes(conn: psycopg2.extensions.connection, symbols: Sequence[str]) -> StepResult:
    """Staging, then the models fed by its change log; each its own transaction (a crash
    between them leaves the later watermarks behind, and the next call catches up)."""
    staging = staging_routine(conn)
    with conn, conn.cursor() as cur:
        cur.execute(
            f"select loads_applied, rows_written, symbols_held from {staging}(p_symbols => %s)",
            (list(symbols),),
        )
        loads_applied, staging_rows, symbols_held = cur.fetchone()
    if symbols_held:
        # The price guard held them back, as a file load's would be: out of the marts until a
        # person accepts them (docs/data_quality.md "The price guard").
        log.warning(
            "price guard: %d symbol(s) of this batch held back (staging.stg_market_data__held_prices); "
            "accept with: dbt build --vars '{accept_held_prices: [SYMBOL, ...]}'",
            symbols_held,
        )
    symbols_changed = trading_day_rows = 0
    for routine in routines(conn, "upstream_changes"):
        with conn, conn.cursor() as cur:
            cur.execute(f"select * from {routine}()")  # names from the package's list, not from input
            changed, rows = cur.fetchone()
        symbols_changed, trading_day_rows = symbols_changed + changed, trading_day_rows + rows
    return StepResult(loads_applied, staging_rows, symbols_changed, trading_day_rows, symbols_held)


def apply_period_marts(conn: psycopg2.extensions.connection) -> int:
    """Bring the period marts that are tables up to date; returns how many were applied."""
    functions = [routine for routine in routines(conn, "period_table") if _may_execute(conn, routine)]
    for function in functions:
        with conn, conn.cursor() as cur:
            cur.execute(f"select * from {function}()")  # names from the package's list, not from input
    return len(functions)


def _may_execute(conn: psycopg2.extensions.connection, routine: str) -> bool:
    with conn, conn.cursor() as cur:
        cur.execute("select coalesce(has_function_privilege(to_regproc(%s), 'execute'), false)", (routine,))
        return bool(cur.fetchone()[0])
