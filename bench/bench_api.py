"""API load benchmark: a bounded run on 127.0.0.1 over a realistic mix of requests.

    eval "$(bash scripts/db.sh env reader)"          # or any PG* variables, read-only is enough
    python bench/bench_api.py                         # 4,000 requests, 16 concurrent, 2 workers
    python bench/bench_api.py --sample-db             # on a throwaway copy of the bundled sample
    python bench/bench_api.py --database stock_analytics_kaggle --requests 8000

Starts `python -m api --workers N` on a free port (or uses --url), picks --symbols symbols with
prices at random (seeded), and sends a fixed count of requests with a fixed concurrency from an
async httpx2 client, equal shares of: one symbol's monthly averages for all years, a year of
moving averages, a quarter of daily bars, and a symbol's metadata. It stops by itself.

Reports requests/s, client-side p50/p95/p99 latency and errors, per kind and overall; the CPU
the client, the API workers and the API's PostgreSQL backends used during the run (they share
the machine's cores); and the API's own overhead: each response's Server-Timing header gives
the time in SQL (db), waiting for a pooled connection (wait) and the whole request (app), so
app - db - wait is the time the API spent on its own (routing, validation, JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx2
import psycopg

from api.settings import Settings
from devtools import api_server
from devtools.databases import Database, create_database, drop_database
from devtools.sample import load_and_build_sample
from devtools.stats import percentile
from warehouse_connection import connection_params

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
KINDS = ("monthly_all_years", "moving_averages_year", "prices_quarter", "metadata")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TIMING = re.compile(r"(\w+);dur=([\d.]+)")


@dataclass
class Sample:
    kind: str
    status: int  # 0: transport error
    latency_ms: float
    db_ms: float
    wait_ms: float
    app_ms: float


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (those that have exited count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def pick_symbols(url: str, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """`count` symbols with at least a year and a half of prices, at random."""
    rows, cursor = [], None
    with httpx2.Client(base_url=url, timeout=30) as http:
        while True:
            params = {"has_prices": "true", "limit": 5000, **({"cursor": cursor} if cursor else {})}
            body = http.get("/symbols", params=params).raise_for_status().json()
            rows += [r for r in body["data"] if r["trading_days"] >= 380]
            if not (cursor := body["next"]):
                break
    if not rows:
        sys.exit("no symbol with 380+ trading days in dim_symbols: load and build data first")
    return rng.sample(rows, min(count, len(rows)))


def request_for(kind: str, symbol: dict[str, Any], rng: random.Random) -> str:
    name = symbol["symbol"]
    first, last = (
        date.fromisoformat(symbol["first_trade_date"]),
        date.fromisoformat(symbol["last_trade_date"]),
    )
    if kind == "monthly_all_years":
        return f"/symbols/{name}/averages/monthly?limit=5000"
    if kind == "metadata":
        return f"/symbols/{name}"
    if kind == "moving_averages_year":
        year = rng.randint(first.year + 1, max(first.year + 1, last.year - 1))
        return f"/symbols/{name}/moving-averages?start={year}-01-01&end={year}-12-31"
    year = rng.randint(first.year + 1, max(first.year + 1, last.year - 1))
    quarter = rng.randint(0, 3)
    start = date(year, 1 + 3 * quarter, 1)
    end = date(year + (quarter == 3), 1 if quarter == 3 else 4 + 3 * quarter, 1)
    return f"/symbols/{name}/prices?start={start}&end={date.fromordinal(end.toordinal() - 1)}"


def plan(symbols: list[dict[str, Any]], total: int, rng: random.Random) -> list[tuple[str, str]]:
    """`total` requests, equal shares of each kind, in random order."""
    kinds = [KINDS[i % len(KINDS)] for i in range(total)]
    requests = [(kind, request_for(kind, rng.choice(symbols), rng)) for kind in kinds]
    rng.shuffle(requests)
    return requests


async def run(url: str, requests: list[tuple[str, str]], concurrency: int) -> list[Sample]:
    samples: list[Sample] = []
    queue = iter(requests)
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def client() -> None:
            for kind, path in queue:  # a shared iterator: each request is taken once
                started = time.perf_counter()
                try:
                    response = await http.get(path)
                    await response.aread()
                    status = response.status_code
                    timing = {
                        k: float(v) for k, v in TIMING.findall(response.headers.get("server-timing", ""))
                    }
                except httpx2.HTTPError:
                    status, timing = 0, {}
                latency = (time.perf_counter() - started) * 1000
                samples.append(
                    Sample(
                        kind,
                        status,
                        latency,
                        timing.get("db", 0),
                        timing.get("wait", 0),
                        timing.get("app", 0),
                    )
                )

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return samples


def summarize(samples: list[Sample]) -> dict[str, Any]:
    ok = [s for s in samples if s.status == 200]
    latency = [s.latency_ms for s in samples]
    overhead = [s.app_ms - s.db_ms - s.wait_ms for s in ok]
    return {
        "requests": len(samples),
        "errors": len(samples) - len(ok),
        "p50_ms": percentile(latency, 50),
        "p95_ms": percentile(latency, 95),
        "p99_ms": percentile(latency, 99),
        "max_ms": max(latency, default=float("nan")),
        "server_p50_ms": percentile([s.app_ms for s in ok], 50),
        "db_p50_ms": percentile([s.db_ms for s in ok], 50),
        "db_p95_ms": percentile([s.db_ms for s in ok], 95),
        "wait_p50_ms": percentile([s.wait_ms for s in ok], 50),
        "wait_p95_ms": percentile([s.wait_ms for s in ok], 95),
        "overhead_mean_ms": statistics.fmean(overhead) if overhead else float("nan"),
        "overhead_p50_ms": percentile(overhead, 50),
        "overhead_p95_ms": percentile(overhead, 95),
    }


def api_backend_pids(env: dict[str, str]) -> list[int]:
    """PostgreSQL backends of the API's pools, on the primary and on every read server
    (API_READ_SERVERS) of the environment (same machine: their CPU is in /proc)."""
    servers = [{}, *({"host": host, "port": port} for host, port in Settings.from_env(env).read_servers)]
    pids = []
    for where in servers:
        with psycopg.connect(autocommit=True, **connection_params(env) | where) as conn:
            rows = conn.execute(
                "select pid from pg_stat_activity where application_name = 'stock_analytics_api'"
            ).fetchall()
        pids += [row[0] for row in rows]
    return pids


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=4000, help="measured requests (default: %(default)s)")
    parser.add_argument(
        "--warmup", type=int, default=400, help="unmeasured requests first (default: %(default)s)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="API worker processes (default: %(default)s)")
    parser.add_argument(
        "--symbols", type=int, default=200, help="symbols to draw from (default: %(default)s)"
    )
    parser.add_argument("--database", help="PGDATABASE for this run (default: the environment's)")
    parser.add_argument(
        "--sample-db",
        action="store_true",
        help="load the bundled sample into a throwaway database of its own, build it, run there, drop it "
        "(no interference from dbt builds on the project database)",
    )
    parser.add_argument(
        "--solo",
        type=int,
        default=400,
        help="requests sent one at a time after the run: the overhead without contention "
        "(default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--url", help="benchmark an API already running there instead of starting one")
    args = parser.parse_args()
    if args.requests < 1 or args.concurrency < 1 or args.workers < 1:
        parser.error("--requests, --concurrency and --workers must be positive")

    scratch = make_sample_db() if args.sample_db else None
    try:
        return bench(args, scratch)
    finally:
        if scratch is not None:
            drop_database(scratch)


def make_sample_db() -> Database:
    print("building a throwaway database with the bundled sample ...", flush=True)
    db = create_database(BENCH_DIR / "results" / "api_db", prefix="stock_analytics_bench")
    load, build = load_and_build_sample(db, "--quiet")
    if build is None or build.returncode != 0:
        drop_database(db)
        sys.exit(
            f"could not build the sample database: {(build or load).stdout[-2000:]}{load.stderr[-2000:]}"
        )
    return db


def bench(args: argparse.Namespace, scratch: Database | None) -> int:
    if scratch is not None:
        env = scratch.role_env("reader")  # the read-only role, as `make api` runs it
        database = "sample (throwaway copy)"
    else:
        env = {**os.environ, **({"PGDATABASE": args.database} if args.database else {})}
        database = env.get("PGDATABASE", "(default)")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    results_dir = BENCH_DIR / "results"
    proc = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        log_path = results_dir / f"api_server_{env.get('PGDATABASE', 'default')}_{stamp}.log"
        try:
            proc, url = api_server.start(env, log_path, workers=args.workers)
        except api_server.ApiStartError as exc:
            sys.exit(str(exc))
    rng = random.Random(args.seed)
    try:
        symbols = pick_symbols(url, args.symbols, rng)
        print(f"API {url}, database {database}: {len(symbols)} symbols drawn", flush=True)
        asyncio.run(run(url, plan(symbols, args.warmup, rng), args.concurrency))
        requests = plan(symbols, args.requests, rng)

        server_pids = [proc.pid, *children(proc.pid)] if proc else []
        backends = api_backend_pids(env) if proc else []
        cpu_before = (time.process_time(), cpu_seconds(server_pids), cpu_seconds(backends))
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        samples = asyncio.run(run(url, requests, args.concurrency))
        wall = time.perf_counter() - started
        cpu_after = (time.process_time(), cpu_seconds(server_pids), cpu_seconds(backends))
        solo = asyncio.run(run(url, plan(symbols, args.solo, rng), 1)) if args.solo else []
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)

    cores = os.cpu_count() or 1
    client_cpu, server_cpu, pg_cpu = (
        after - before for after, before in zip(cpu_after, cpu_before, strict=True)
    )
    result = {
        "database": database,
        "url": url,
        "workers": None if args.url else args.workers,
        "concurrency": args.concurrency,
        "cores": cores,
        "wall_s": wall,
        "requests_per_s": len(samples) / wall,
        "client_cpu_share": client_cpu / wall / cores,
        "api_cpu_share": server_cpu / wall / cores if proc else None,
        "api_postgres_cpu_share": pg_cpu / wall / cores if proc else None,
        "load_average_before": load_before,
        "overall": summarize(samples),
        "by_kind": {kind: summarize([s for s in samples if s.kind == kind]) for kind in KINDS},
        "statuses": {str(k): v for k, v in sorted(_count(s.status for s in samples).items())},
        "solo": {kind: summarize([s for s in solo if s.kind == kind]) for kind in KINDS} if solo else None,
        "command": " ".join(sys.argv),
    }
    results_dir.mkdir(exist_ok=True)
    out = results_dir / f"api_{env.get('PGDATABASE', 'default')}_{stamp}.json"
    out.write_text(json.dumps(result, indent=2))
    print_report(result, out)
    return 0 if result["overall"]["errors"] == 0 else 1


def _count(values: Any) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def print_report(result: dict[str, Any], out: Path) -> None:
    o = result["overall"]
    share = result["api_cpu_share"]
    print(
        f"\n{o['requests']:,} requests, concurrency {result['concurrency']}, "
        f"{result['workers']} API workers, "
        f"{result['cores']} cores: {result['requests_per_s']:,.0f} requests/s, {o['errors']} errors "
        f"(statuses {result['statuses']})"
    )
    print(
        f"CPU share of the machine during the run: client {result['client_cpu_share']:.0%}"
        + (
            f", API workers {share:.0%}, the API's PostgreSQL backends {result['api_postgres_cpu_share']:.0%}"
            if share is not None
            else ""
        )
        + f" (load average before: {result['load_average_before']:.2f})"
    )
    print(
        "\n| requests | n | p50 ms | p95 ms | p99 ms | SQL p50 / p95 ms | pool wait p50 / p95 ms "
        "| API overhead mean / p50 / p95 ms | errors |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, s in [*result["by_kind"].items(), ("all", o)]:
        print(
            f"| {name} | {s['requests']:,} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} "
            f"| {s['db_p50_ms']:.1f} / {s['db_p95_ms']:.1f} "
            f"| {s['wait_p50_ms']:.1f} / {s['wait_p95_ms']:.1f} "
            f"| {s['overhead_mean_ms']:.2f} / {s['overhead_p50_ms']:.2f} / {s['overhead_p95_ms']:.2f} "
            f"| {s['errors']} |"
        )
    if result["solo"]:
        print("\nOne request at a time (no contention): latency and the API's overhead beyond its SQL")
        print("| requests | n | p50 ms | p95 ms | SQL p50 ms | API overhead p50 / p95 ms |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for name, s in result["solo"].items():
            print(
                f"| {name} | {s['requests']:,} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} "
                f"| {s['db_p50_ms']:.1f} | {s['overhead_p50_ms']:.2f} / {s['overhead_p95_ms']:.2f} |"
            )
    print(f"\nraw figures: {out.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    sys.exit(main())
