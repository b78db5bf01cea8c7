"""Do monthly -> quarterly -> yearly rollups pay? The quarterly and yearly period marts computed
from the trading days (what the marts do) against computed from a monthly rollup that keeps
sums and counts (an average of averages is not an average), on the same synthetic trading
days, for a full build and for an incremental step (every symbol one new day in December, the
worst month for a yearly recompute). Also checks that the rollups are exact (1e-12 relative).

    python bench/bench_period_rollups.py                        # 2.5 M rows, 1,000 symbols
    python bench/bench_period_rollups.py --rows 24000000 --symbols 8000

Generates the rows in SQL (a hypertable shaped like int_daily_prices__trading_days, chunks of
365 days) in a database of its own, dropped afterwards. Prints each time (best of --repeat) and
the ratios; exit code 1 when a rollup differs from the direct aggregate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from devtools.databases import Database, create_database, drop_database

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

PERIODS = {"quarterly": "3 months", "yearly": "1 year"}
LAST_DAY = "2020-12-30"  # the incremental step adds 2020-12-31 (a Thursday)

GENERATE = """
create table days (
    symbol text not null, trade_date date not null, open float8, high float8, low float8,
    close float8 not null, volume bigint
);
select create_hypertable(
    'days', by_range('trade_date', interval '365 days'), create_default_indexes => false
);
insert into days
select
    'S' || lpad(s::text, 5, '0'),
    d::date,
    case when (s + n) % 97 = 0 then 0 else price * 0.995 end,
    case when (s + n) % 101 = 0 then null else price * 1.01 end,
    case when (s + n) % 103 = 0 then null else price * 0.99 end,
    price,
    1000 + (s * 7919 + n * 104729) % 1000000
from generate_series(1, {symbols}) as s
cross join lateral (
    select d, row_number() over (order by d) as n
    from generate_series(date '{last_day}' - {span}, date '{last_day}', interval '1 day') as d
    where extract(isodow from d) < 6
) as weekdays
cross join lateral (select 10 + s % 90 + 5 * sin(n / 20.0) + n * 0.001 as price) as p;
create unique index on days (symbol, trade_date);
analyze days;
"""

DIRECT = """
select
    symbol,
    time_bucket(interval '{width}', trade_date) as period_start,
    count(*) as trading_days,
    avg(high) as avg_high,
    avg(low) as avg_low,
    cast(avg(volume) as double precision) as avg_volume,
    avg(close) as avg_close,
    first(open, trade_date) filter (where open > 0) as period_open,
    max(high) as period_high,
    min(low) as period_low,
    last(close, trade_date) as period_close,
    cast(sum(volume) as bigint) as total_volume
from days
where {where}
group by symbol, period_start
"""

# The monthly rollup a quarterly or yearly mart could be computed from: the monthly mart's
# columns plus the sums and counts its averages need.
MONTHLY_ROLLUP = """
select
    symbol,
    time_bucket(interval '1 month', trade_date) as period_start,
    count(*) as trading_days,
    sum(high) as sum_high, count(high) as n_high,
    sum(low) as sum_low, count(low) as n_low,
    sum(volume) as sum_volume, count(volume) as n_volume,
    sum(close) as sum_close,
    first(open, trade_date) filter (where open > 0) as period_open,
    max(high) as period_high,
    min(low) as period_low,
    last(close, trade_date) as period_close
from days
where {where}
group by symbol, period_start
"""

FROM_MONTHS = """
select
    symbol,
    time_bucket(interval '{width}', period_start) as period_start,
    sum(trading_days) as trading_days,
    sum(sum_high) / nullif(sum(n_high), 0) as avg_high,
    sum(sum_low) / nullif(sum(n_low), 0) as avg_low,
    cast(sum(sum_volume) / nullif(sum(n_volume), 0) as double precision) as avg_volume,
    sum(sum_close) / sum(trading_days) as avg_close,
    first(period_open, period_start) filter (where period_open is not null) as period_open,
    max(period_high) as period_high,
    min(period_low) as period_low,
    last(period_close, period_start) as period_close,
    cast(sum(sum_volume) as bigint) as total_volume
from monthly_rollup
where {where}
group by symbol, 2
"""

VALUES = (
    "avg_high", "avg_low", "avg_volume", "avg_close", "period_open",
    "period_high", "period_low", "period_close",
)  # fmt: skip


def count(sql: str) -> str:
    """The query's rows counted: every aggregate is computed, nothing is sent back."""
    return f"select count(*) from ({sql}) q"


def best_time(db: Database, sql: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        db.query(sql)
        best = min(best, time.perf_counter() - started)
    return best


def largest_difference(db: Database, width: str) -> float:
    """The largest relative difference between the rollup and the direct aggregate (1.0 for
    a key or a count that differs)."""
    direct = DIRECT.format(width=width, where="true")
    rolled = FROM_MONTHS.format(width=width, where="true")
    values = ", ".join(
        f"coalesce(abs(d.{c} - r.{c}) / nullif(greatest(abs(d.{c}), abs(r.{c})), 0), "
        f"case when (d.{c} is null) = (r.{c} is null) then 0 else 1 end)"
        for c in VALUES
    )
    return db.scalar(
        f"select coalesce(max(greatest({values}, "
        "case when d.trading_days = r.trading_days and d.total_volume = r.total_volume "
        "then 0 else 1 end)), 0) "
        f"from ({direct}) d full join ({rolled}) r using (symbol, period_start)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_500_000, help="trading days in all (about)")
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    weekdays = max(args.rows // args.symbols, 30)
    span = weekdays * 7 // 5

    db = create_database(BENCH_DIR / "results" / "rollups_db", prefix="stock_analytics_bench")
    try:
        print(f"generating {args.symbols:,} symbols x ~{weekdays:,} trading days ...", flush=True)
        db.query(GENERATE.format(symbols=args.symbols, last_day=LAST_DAY, span=span))
        rows = db.scalar("select count(*) from days")
        print(f"trading days: {rows:,}", flush=True)

        monthly = MONTHLY_ROLLUP.format(where="true")
        plain_monthly = best_time(db, count(DIRECT.format(width="1 month", where="true")), args.repeat)
        rollup_monthly = best_time(db, count(monthly), args.repeat)
        db.query(f"create table monthly_rollup as {monthly}")
        db.query("create unique index on monthly_rollup (symbol, period_start); analyze monthly_rollup")
        # (phase, period) -> (from trading days, from the monthly rollup), in seconds
        timings: dict[tuple[str, str], tuple[float, float]] = {}
        for name, width in PERIODS.items():
            timings["full build", name] = (
                best_time(db, count(DIRECT.format(width=width, where="true")), args.repeat),
                best_time(db, count(FROM_MONTHS.format(width=width, where="true")), args.repeat),
            )

        # The incremental step: every symbol one new day (Dec 31); each mart recomputes every
        # symbol's current period (the apply function's rule for a from_date of Dec 31), and the
        # rollup first its December.
        db.query(
            "insert into days select symbol, date '2020-12-31', open, high, low, close, volume "
            f"from days where trade_date = date '{LAST_DAY}'; analyze days"
        )
        december = MONTHLY_ROLLUP.format(where="trade_date >= date '2020-12-01'")
        db.query(
            "delete from monthly_rollup where period_start = date '2020-12-01'; "
            f"insert into monthly_rollup {december}"
        )
        step_monthly = best_time(db, count(december), args.repeat)
        for name, width in PERIODS.items():
            start = "2020-10-01" if width == "3 months" else "2020-01-01"
            timings["daily step", name] = (
                best_time(
                    db, count(DIRECT.format(width=width, where=f"trade_date >= date '{start}'")), args.repeat
                ),
                best_time(
                    db,
                    count(FROM_MONTHS.format(width=width, where=f"period_start >= date '{start}'")),
                    args.repeat,
                ),
            )

        print(
            f"monthly mart, full build: {plain_monthly * 1000:.0f} ms; with the rollup's sums and counts: "
            f"{rollup_monthly * 1000:.0f} ms; its December in the daily step: {step_monthly * 1000:.0f} ms"
        )
        for (phase, name), (direct, rolled) in timings.items():
            print(
                f"{phase:10s} {name:9s} from trading days {direct * 1000:8.1f} ms, from monthly rollup "
                f"{rolled * 1000:8.1f} ms: {direct / rolled:5.1f}x"
            )
        for phase in ("full build", "daily step"):
            direct = sum(timings[phase, name][0] for name in PERIODS)
            rolled = sum(timings[phase, name][1] for name in PERIODS)
            # the rollup's own cost: its sums and counts on a full build, its December in a step
            extra = max(rollup_monthly - plain_monthly, 0.0) if phase == "full build" else step_monthly
            with_rollups = rolled + extra
            print(
                f"{phase}: quarterly + yearly {direct * 1000:.0f} ms direct, {with_rollups * 1000:.0f} ms "
                f"with rollups (their monthly input included): saves {(direct - with_rollups) * 1000:.0f} ms"
            )

        worst = max(largest_difference(db, width) for width in PERIODS.values())
        print(f"largest relative difference rollup vs direct: {worst:.3g}")
        return 0 if worst <= 1e-12 else 1
    finally:
        drop_database(db)


if __name__ == "__main__":
    sys.exit(main())
