"""What the indicators cost (commits 1f8de33 and de44ca1), against the tree just before them:
the builds and the reader queries of two databases on one server, side by side in one run.

    # 1. the same bench in both trees, fresh databases each, kept (the old tree in a worktree)
    git worktree add /tmp/bench_old 578dabc && (cd /tmp/bench_old && DBT_PROFILES_DIR=$PWD dbt deps)
    eval "$(make -s env)"; export STOCK_ANALYTICS_STATE_DIR=$PWD/.local
    (cd /tmp/bench_old && PYTHONPATH=$PWD python bench/bench_incremental.py --data DATA --steps 1,2 --keep)
    python bench/bench_incremental.py --data DATA --steps 1,2 --keep
    # 2. this script on the two kept databases and the two runs' JSON
    python bench/bench_indicators.py --old-database OLD --new-database NEW \\
        --old-results /tmp/bench_old/bench/results/incremental-community.json \\
        --new-results bench/results/incremental-community.json [--drop]

What it prints and writes (bench/results/indicators.json and .md, a time-stamped JSON copy):
- builds: the first build and the daily refresh of each tree (load, `dbt build`, the trading
  days model's node time, which the indicators are added to), new / old and new - old;
- the cost of one row of the indicators' aggregate, on the new database's stored trading days:
  the aggregate over every row as a window (a PL/pgSQL call per row) against the same window
  with the built-in sum() (the floor: the sort and the window machinery alone), and the numeric
  running sums against the same sums in float8;
- reader queries as the `reader` role, p50/p95 over --runs runs after --warmup unmeasured
  ones, the two databases queried in turn (old, new, old, ...): the latest row of every symbol
  (old: `distinct on (symbol)` over fct_daily_moving_averages; new: fct_latest_day), the
  screener, one symbol's last year of indicators (old: the nearest query it has, a year of
  moving averages), with a `select 1` round trip beside them as the floor; EXPLAIN (ANALYZE,
  BUFFERS) of each.
Checks: both databases hold the same latest rows (symbol, date, close), and fct_latest_day has
one row per symbol equal to the distinct-on row. Exit 0, 1 when a check failed, 2 on bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bench_incremental import (
    LATEST_SQL,
    RESULTS_DIR,
    WORK_DIR,
    Context,
    attach_database,
    explain,
    explain_summary,
    git_commit,
)
from devtools.databases import drop_database
from devtools.stats import percentile

log = logging.getLogger("bench_indicators")

SCREENER_SQL = "select symbol from marts.fct_latest_day where crossed_above_sma_200 or crossed_below_sma_200"
LATEST_DAY_SQL = "select * from marts.fct_latest_day"
INDICATORS_YEAR_SQL = (
    "select * from marts.fct_daily_indicators where symbol = %(symbol)s and trade_date >= %(start)s "
    "order by trade_date"
)
MA_YEAR_SQL = (
    "select * from marts.fct_daily_moving_averages where symbol = %(symbol)s and trade_date >= %(start)s "
    "order by trade_date"
)
ROUND_TRIP_SQL = "select 1"
# The `distinct on` latest row reads every chunk: seconds a run at Kaggle scale.
SLOW_QUERIES = ("latest", "latest_distinct_on")
TRADING_DAYS = "model int_daily_prices__trading_days"
TABLE = "intermediate.int_daily_prices__trading_days"
# The model's one pass (extension price_series) over every stored row as a first build calls it,
# against the same window with a built-in aggregate, and the running sums the SQL form needed.
WINDOW = "over (partition by symbol order by trade_date rows unbounded preceding)"
COST_SQL = {
    "builtin_sum_window": f"select count(x) from (select sum(close) {WINDOW} as x from {TABLE}) q",
    "price_series_pass_window": (
        "select count(x) from (select price_series.trading_days(null, close, high, low, adj_close, null) "
        f"{WINDOW} as x from {TABLE}) q"
    ),
    "float8_running_sums": (
        "select count(a) from (select sum(close) over w as a, sum(close * close) over w as b "
        f"from {TABLE} window w as (partition by symbol order by trade_date)) q"
    ),
    "numeric_running_sums": (
        "select count(a) from (select sum(close::numeric) over w as a, "
        "sum(close::numeric * close::numeric) over w as b "
        f"from {TABLE} window w as (partition by symbol order by trade_date)) q"
    ),
}


def node_seconds(build: dict[str, Any], node: str) -> float | None:
    for n in build["top_nodes"]:
        if n["node"] == node:
            return n["seconds"]
    return None


def build_figures(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """The two runs' steps 1 and 2, figure by figure: old, new, new / old, new - old."""
    rows = []
    for step, label in (("1", "first build"), ("2", "daily refresh")):
        o, n = old["steps"].get(step), new["steps"].get(step)
        if not o or not n:
            continue
        figures = {
            "load + `dbt build`": (o["seconds"], n["seconds"]),
            "load": (o["load"]["seconds"], n["load"]["seconds"]),
            "`dbt build` (wall)": (o["build"]["seconds"], n["build"]["seconds"]),
            "trading days model (node time)": (
                node_seconds(o["build"], TRADING_DAYS),
                node_seconds(n["build"], TRADING_DAYS),
            ),
            "fct_latest_day model (node time)": (None, node_seconds(n["build"], "model fct_latest_day")),
            "all models (node time)": (
                o["build"]["seconds_by_type"].get("model"),
                n["build"]["seconds_by_type"].get("model"),
            ),
            "all tests (node time, 2 threads)": (
                o["build"]["seconds_by_type"].get("test"),
                n["build"]["seconds_by_type"].get("test"),
            ),
            "nodes": (o["build"]["nodes"], n["build"]["nodes"]),
        }
        for name, (a, b) in figures.items():
            rows.append(
                {
                    "step": label,
                    "figure": name,
                    "old": a,
                    "new": b,
                    "ratio": b / a if a and b is not None else None,
                    "delta": b - a if a is not None and b is not None else None,
                }
            )
    return rows


def timed_ms(ctx: Context, sql: str, params: Any, role: str = "reader") -> tuple[float, list[tuple]]:
    with ctx.conn(role).cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql, params)
        rows = cur.fetchall()
        return (time.perf_counter() - started) * 1000, rows


def draw_symbols(ctx: Context, count: int, seed: int) -> list[dict[str, Any]]:
    """Symbols with more than a year and a half of history (seeded draw); each query reads the
    last year of one, trade_date >= its last day - 365 days."""
    rows = ctx.query(
        "select symbol, last_trade_date from marts.dim_symbols where has_prices and trading_days >= 380 "
        "order by trading_days desc, symbol"
    )
    rng = random.Random(seed)
    chosen = [rows[0], *rng.sample(rows[1:], min(count - 1, len(rows) - 1))]
    return [{"symbol": s, "start": last - timedelta(days=365)} for s, last in chosen]


def side_by_side(
    ctxs: dict[str, Context],
    queries: dict[str, tuple[str, bool]],
    symbols: list[dict[str, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Each query of each tree, the trees in turn run by run; p50/p95/max in ms, rows per run."""
    out: dict[str, Any] = {}
    for tree, (sql, _) in queries.items():
        out[tree] = {"sql": sql, "times": [], "rows": []}
    for i in range(args.warmup + args.runs):
        params = symbols[i % len(symbols)]
        for tree, (sql, per_symbol) in queries.items():
            ms, rows = timed_ms(ctxs[tree.split(":")[0]], sql, params if per_symbol else None)
            if i >= args.warmup:
                out[tree]["times"].append(ms)
                out[tree]["rows"].append(len(rows))
    for tree, (sql, per_symbol) in queries.items():
        t = out[tree].pop("times")
        r = out[tree].pop("rows")
        out[tree] |= {
            "runs": len(t),
            "p50_ms": percentile(t, 50),
            "p95_ms": percentile(t, 95),
            "max_ms": max(t),
            "rows_per_run": sum(r) / len(r),
            "explain": explain(ctxs[tree.split(":")[0]], sql, symbols[0] if per_symbol else None),
        }
        log.info("%s: p50 %.2f ms, p95 %.2f ms", tree, out[tree]["p50_ms"], out[tree]["p95_ms"])
    return out


def check_latest(ctxs: dict[str, Context]) -> list[str]:
    problems = []
    latest = {
        tree: sorted(tuple(r) for r in ctx.query(f"select symbol, trade_date, close from ({LATEST_SQL}) q"))
        for tree, ctx in ctxs.items()
    }
    if latest["old"] != latest["new"]:
        problems.append("the two databases' latest rows (symbol, date, close) differ: not the same data")
    screener = sorted(
        tuple(r) for r in ctxs["new"].query("select symbol, trade_date, close from marts.fct_latest_day")
    )
    if screener != latest["new"]:
        problems.append(
            f"fct_latest_day ({len(screener)} rows) is not the distinct-on latest row "
            f"({len(latest['new'])} rows)"
        )
    return problems


def cost_per_row(ctx: Context, repeat: int) -> dict[str, Any]:
    rows = ctx.scalar(f"select count(*) from {TABLE}", role="transformer")
    ctx.query(f"select count(*) from {TABLE} where close is not null", role="transformer")  # warm
    out: dict[str, Any] = {"rows": rows}
    for name, sql in COST_SQL.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            ctx.query(sql, role="transformer")
            times.append(time.perf_counter() - started)
        out[name] = {"seconds": min(times), "all_seconds": times}
        log.info("cost: %s %.2f s", name, min(times))
    extra = out["price_series_pass_window"]["seconds"] - out["builtin_sum_window"]["seconds"]
    out["price_series_us_per_row"] = extra / rows * 1e6
    out["numeric_extra_us_per_row"] = (
        (out["numeric_running_sums"]["seconds"] - out["float8_running_sums"]["seconds"]) / rows * 1e6
    )
    return out


def fmt(value: Any, unit: str = "s") -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:,.1f} s" if abs(value) >= 10 else f"{value:.2f} s"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "### The indicators' cost, side by side with the tree before them",
        "",
        f"{result['finished_at']} UTC; old database `{result['old']['database']}` "
        f"({result['old']['commit']}), "
        f"new `{result['new']['database']}` ({result['new']['commit']}); dataset "
        f"`{result['dataset'].get('path')}`; load average {result['load_average_start']:.2f} at the start, "
        f"{result['load_average_end']:.2f} at the end; {os.cpu_count()} cores shared with other work.",
        "",
        "| step | figure | old | new | new / old | new - old |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in result["builds"]:
        unit = "" if r["figure"] == "nodes" else "s"
        lines.append(
            f"| {r['step']} | {r['figure']} | {fmt(r['old'], unit)} | {fmt(r['new'], unit)} | "
            + (f"{r['ratio']:.2f}x" if r["ratio"] else "-")
            + " | "
            + (fmt(r["delta"], unit) if r["delta"] is not None else "-")
            + " |"
        )
    if c := result.get("cost"):
        lines += [
            "",
            f"One row of the indicators, on the new database's {c['rows']:,} stored trading days (as "
            "`transformer`, best of the runs):",
            "",
            "| query over every row | seconds |",
            "| --- | ---: |",
            *[f"| {name} | {fmt(c[name]['seconds'])} |" for name in COST_SQL],
            "",
            f"the price_series pass beyond the built-in window: {c['price_series_us_per_row']:.1f} us a row; "
            f"numeric running sums beyond float8: {c['numeric_extra_us_per_row']:.2f} us a row.",
        ]
    lines += [
        "",
        f"Reader queries as `reader`, {result['runs']} runs after {result['warmup']} unmeasured, the "
        f"databases in turn ({result['symbols']} symbols drawn for the per-symbol queries):",
        "",
        "| query | old p50 / p95 | new p50 / p95 | p95 new / old | floor (`select 1`) p95 | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    q = result["queries"]
    floor = q["round_trip"]
    floor_p95 = f"{floor['old']['p95_ms']:.2f} / {floor['new']['p95_ms']:.2f} ms"
    for key, label, target in (
        (
            "latest",
            "latest row of every symbol (old: `distinct on` over moving averages; new: `fct_latest_day`)",
            "p95 <= 50 ms",
        ),
        ("latest_distinct_on", "the old `distinct on` query, both trees", "-"),
        ("screener", "screener: crossed the 200-day SMA on the last day", "p95 <= 20 ms"),
        (
            "symbol_year",
            "one symbol's last year (old: moving averages; new: `fct_daily_indicators`)",
            "p95 <= 10 ms",
        ),
        ("symbol_year_ma", "one symbol's last year of moving averages, both trees", "-"),
    ):
        if key not in q:
            continue
        o, n = q[key].get("old"), q[key].get("new")
        runs_note = f" ({n['runs']} runs)" if n["runs"] != result["runs"] else ""
        lines.append(
            f"| {label}{runs_note} | "
            + (f"{o['p50_ms']:.2f} / {o['p95_ms']:.2f} ms" if o else "-")
            + " | "
            + f"{n['p50_ms']:.2f} / {n['p95_ms']:.2f} ms | "
            + (f"{n['p95_ms'] / o['p95_ms']:.2f}x" if o else "-")
            + f" | {floor_p95} | {target} |"
        )
    for key, group in q.items():
        for tree, figures in group.items():
            lines += [
                "",
                f"EXPLAIN (ANALYZE, BUFFERS), {key}, {tree}: {explain_summary(figures['explain'])}",
                "",
                "```",
                *figures["explain"]["plan"].splitlines()[:30],
                "```",
            ]
    if result["failures"]:
        lines += ["", "**Failed checks:**", *[f"- {f}" for f in result["failures"]]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old-database", required=True, help="kept by bench_incremental.py in the old tree")
    parser.add_argument("--new-database", required=True, help="kept by bench_incremental.py in this tree")
    parser.add_argument("--old-results", type=Path, help="the old tree's run's JSON")
    parser.add_argument("--new-results", type=Path, help="this tree's run's JSON")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--cost-repeat", type=int, default=2, help="per-row cost runs, best kept; 0 skips them"
    )
    parser.add_argument(
        "--slow-runs",
        type=int,
        default=None,
        help="runs (and a tenth of them as warm-up) of the `distinct on` latest-row queries, which "
        "take seconds at Kaggle scale (default: --runs)",
    )
    parser.add_argument("--drop", action="store_true", help="drop both databases at the end")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    load_start = os.getloadavg()[0]

    ctxs = {}
    for tree, name in (("old", args.old_database), ("new", args.new_database)):
        db = attach_database(name, WORK_DIR / name)
        license_ = db.scalar("select current_setting('timescaledb.license', true)") or "none"
        ctxs[tree] = Context(db, argparse.Namespace(), license_, {}, {})
    runs = {}
    for tree, path in (("old", args.old_results), ("new", args.new_results)):
        runs[tree] = json.loads(path.read_text()) if path else {}
        if runs[tree] and runs[tree].get("database") != ctxs[tree].db.name:
            parser.error(f"{path} is a run on {runs[tree].get('database')}, not {ctxs[tree].db.name}")

    failures = check_latest(ctxs)
    symbols = draw_symbols(ctxs["new"], args.symbols, args.seed)
    queries = {
        "round_trip": {"old": (ROUND_TRIP_SQL, False), "new": (ROUND_TRIP_SQL, False)},
        "latest": {"old": (LATEST_SQL, False), "new": (LATEST_DAY_SQL, False)},
        "latest_distinct_on": {"new": (LATEST_SQL, False)},
        "screener": {"new": (SCREENER_SQL, False)},
        "symbol_year": {"old": (MA_YEAR_SQL, True), "new": (INDICATORS_YEAR_SQL, True)},
        "symbol_year_ma": {"new": (MA_YEAR_SQL, True)},
    }
    measured: dict[str, Any] = {}
    slow = args
    if args.slow_runs:
        slow = argparse.Namespace(runs=args.slow_runs, warmup=max(1, args.slow_runs // 10))
    for key, by_tree in queries.items():
        log.info("reader query: %s ...", key)
        measured[key] = side_by_side(ctxs, by_tree, symbols, slow if key in SLOW_QUERIES else args)
    # the old figure of the distinct-on query is the `latest` one's old side
    measured["latest_distinct_on"]["old"] = measured["latest"]["old"]
    measured["symbol_year_ma"]["old"] = measured["symbol_year"]["old"]
    cost = cost_per_row(ctxs["new"], args.cost_repeat) if args.cost_repeat > 0 else {}

    result = {
        "command": "python bench/bench_indicators.py " + " ".join(sys.argv[1:]),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "commit": git_commit(),
        "old": {"database": args.old_database, "commit": runs["old"].get("commit", "?")},
        "new": {"database": args.new_database, "commit": runs["new"].get("commit", "?")},
        "dataset": runs["new"].get("dataset", {}),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
        "runs": args.runs,
        "warmup": args.warmup,
        "symbols": len(symbols),
        "builds": build_figures(runs["old"], runs["new"]) if runs["old"] and runs["new"] else [],
        "cost": cost,
        "queries": measured,
        "failures": failures,
    }
    for ctx in ctxs.values():
        ctx.close()
    if args.drop:
        for ctx in ctxs.values():
            drop_database(ctx.db)
            log.info("dropped database %s", ctx.db.name)
    RESULTS_DIR.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    (RESULTS_DIR / f"indicators-{stamp}.json").write_text(text)
    (RESULTS_DIR / "indicators.json").write_text(text)
    report = markdown(result)
    (RESULTS_DIR / "indicators.md").write_text(report)
    print(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
