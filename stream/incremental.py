"""The warehouse's incremental step, run for the feed: the same functions `dbt build` creates
and calls (macros/incremental/), so the rules exist once.

Staging applies the pending loads (the feed's, and any file load of the touched symbols), the
trading days then recompute the changed symbols from their first changed date (the running
sums and moving averages of marts.fct_daily_moving_averages). The period marts follow less
often (`apply_period_marts`): as tables (the apache edition) they have an `__apply()` function
the streamer may run; as continuous aggregates (the community edition) their refresh needs the
owner, so `dbt build` (make refresh) refreshes them, and real-time aggregation shows the feed's
newer buckets meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2.errors
import psycopg2.extensions

log = logging.getLogger(__name__)

STAGING_APPLY = "staging.stg_market_data__daily_prices__apply"
TRADING_DAYS_APPLY = "intermediate.int_daily_prices__trading_days__apply"


class IncrementalStepMissing(RuntimeError):
    """dbt has not built the incremental models on this database yet."""


@dataclass
class StepResult:
    loads_applied: int
    staging_rows: int
    symbols_changed: int
    trading_day_rows: int
    symbols_held: int = 0


def check_functions(conn: psycopg2.extensions.connection) -> None:
    with conn, conn.cursor() as cur:
        for name in (STAGING_APPLY, TRADING_DAYS_APPLY):
            cur.execute("select to_regproc(%s) is not null", (name,))
            if not cur.fetchone()[0]:
                raise IncrementalStepMissing(
                    f"{name}() does not exist: build the models once (dbt build, or make build) "
                    "before starting the consumer"
                )
            cur.execute("select has_function_privilege(to_regproc(%s), 'execute'), current_user", (name,))
            allowed, role = cur.fetchone()
            if not allowed:
                raise IncrementalStepMissing(
                    f"role {role} may not run {name}(): connect as the streamer role "
                    '(eval "$(make -s env ROLE=streamer)"), and build the models once more with '
                    "dbt build (it grants EXECUTE to var live_feed_role, default streamer)"
                )


def apply_changes(conn: psycopg2.extensions.connection, symbols: Sequence[str]) -> StepResult:
    """Staging, then the trading days; each its own transaction (a crash between them leaves
    the trading days' watermark behind, and the next call catches up)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            f"select loads_applied, rows_written, symbols_held from {STAGING_APPLY}(p_symbols => %s)",
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
    with conn, conn.cursor() as cur:
        cur.execute(f"select * from {TRADING_DAYS_APPLY}()")
        symbols_changed, trading_day_rows = cur.fetchone()
    return StepResult(loads_applied, staging_rows, symbols_changed, trading_day_rows, symbols_held)


def apply_period_marts(conn: psycopg2.extensions.connection) -> int:
    """Bring the period marts that are tables up to date; returns how many were applied."""
    with conn, conn.cursor() as cur:
        cur.execute(
            """
            select p.oid::regprocedure::text
            from pg_proc as p
            inner join pg_namespace as n on p.pronamespace = n.oid
            where n.nspname = 'marts' and p.proname like '%%\\_\\_apply' and p.prokind = 'f'
                and has_function_privilege(p.oid, 'execute')
            order by 1
            """
        )
        functions = [row[0].split("(")[0] for row in cur.fetchall()]
    for function in functions:
        with conn, conn.cursor() as cur:
            cur.execute(f"select * from {function}()")  # names from the catalog, not from input
    return len(functions)
