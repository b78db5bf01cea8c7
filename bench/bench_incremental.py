"""Incremental pipeline benchmark: the first build against its floors, the daily refresh, one
symbol's corrected history (each then checked against a full rebuild), the queries readers run
and the HTTP API, on one server, in a database of its own.

    eval "$(make -s env)"                                   # the server: whatever PG* points at
    python bench/bench_incremental.py                       # Kaggle scale, every step, ~1.5 h
    python bench/bench_incremental.py --data bench/data/200x600000 --keep
    python bench/bench_incremental.py --database NAME --steps 4,5,6     # again on a kept database

Steps (--steps picks any of them; a kept database carries the state from one run to the next):
  1  first load (the loader) + full `dbt build`, with the build's slowest nodes; then, in the
     same database (--no-floors leaves them out), what the hardware must do at least, one after
     the other: a `psql \\copy` of the raw rows into an unindexed text table (the loader's floor),
     one INSERT ... SELECT casting raw.daily_prices into an empty copy of staging's hypertable
     with its unique index (staging's floor: plain casts of the rows the clean-row check passes,
     a duplicate date skipped), and one ordered pass of price_series.trading_days over that copy
     into an empty copy of the trading days' hypertable (theirs); each reported beside what it
     is the floor of (a model's node time includes compressing its old chunks where the edition
     compresses)
  2  daily refresh: DATA-plus-one-day (every file one line longer) loaded (append) + the daily
     `dbt build` (as `make refresh` runs it: without the unit tests); the ratio step 1 / step 2;
     then the same build with nothing new, against dbt's start-up
  3  one symbol's corrected history: its full file with a few old bars changed, loaded as a
     merge (the default mode) + the daily `dbt build`; checks the marts carry the correction
     After steps 2 and 3 (--no-full-refresh-check leaves it out): every mart, staging and the
     trading days copied as the incremental builds left them, `dbt build --full-refresh`, and
     each compared row by row with its copy (the same keys, numbers equal to 1e-12 relative)
  4  every row's moving averages: the sum of sma_20/30/50/200 from fct_daily_moving_averages
     against the same averages from avg(close) over a ROWS frame, float8 and numeric, on the
     same rows; the sums must agree to 1e-9 relative
  5  the latest moving averages of every symbol (`distinct on (symbol)`), with its EXPLAIN, and the
     same from `fct_latest_day` (which keeps all but sma_30), in turn in the same runs (they must
     give the same rows)
  6  single-symbol queries, p95 over --runs runs each: the average volume of the last complete
     quarter (analyses/avg_volume_last_quarter.sql as dbt compiles it), a symbol's monthly
     averages for all years, a year of its moving averages; EXPLAIN (ANALYZE, BUFFERS) of each
     with the chunks read and the indexes used
  7  the HTTP API: bench/bench_api.py on this database as the reader (its API on a free port,
     16 concurrent clients, its request mix, --api-requests requests): p95, requests/s, and the
     share of the cores the client, the API workers and their PostgreSQL backends took

The loader runs as the `loader` role, dbt as `transformer`, the mart queries as `reader` (the
quarter analysis as `transformer`: it reads the seeds schema). Role passwords come from
scripts/db.sh, so for a second project cluster export its STOCK_ANALYTICS_STATE_DIR and
STOCK_ANALYTICS_PG_PORT as well as its PG* variables. On the community edition (license
'timescale') dbt builds with use_continuous_aggregates on unless --dbt-vars says otherwise.

--editions community,apache runs the selected steps once per edition, each on a new cluster of
its own made by scripts/db.sh (removed after), and --write-docs puts both tables into
docs/benchmarks.md (between its markers), replacing the previous run's:

    python bench/bench_incremental.py --editions community,apache --write-docs

Writes bench/results/incremental-<edition>.json and .md (the table below, for
docs/benchmarks.md) and a time-stamped copy of the JSON; prints the table. Exit code 0 when every
selected step ran and its checks held (a missed speed target is reported, not a failure), 1 when
a step failed (the loader, a dbt build, a wrong result), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import yaml
from tqdm import tqdm

from bench.bench_loader import grow_by_one_line, psql_copy
from devtools.clusters import Cluster
from devtools.databases import Database, create_database, database_env, drop_database
from devtools.project import DBT, LOADER
from devtools.stats import percentile

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

log = logging.getLogger("bench_incremental")

DEFAULT_DATA = BENCH_DIR / "data" / "8000x25000000"
RESULTS_DIR = BENCH_DIR / "results"
WORK_DIR = RESULTS_DIR / "incremental-work"  # dbt's target/ and logs/, the loader's summaries
WINDOWS = (20, 30, 50, 200)
STEP_NAMES = {
    1: "first load + full dbt build",
    2: "daily refresh (every file one line longer)",
    3: "one symbol's corrected history (merge)",
    4: "moving averages for every row",
    5: "latest moving averages of every symbol",
    6: "single-symbol queries",
    7: "the HTTP API, 16 concurrent clients",
}
EDITIONS = {"timescale": "community", "apache": "apache"}
SYMBOL_PLACEHOLDER = "__BENCH_SYMBOL__"
# The daily command's build (the Makefile's `refresh`): dbt Labs advise running unit tests in
# development and CI only (their inputs are fixed, so a production run learns nothing from them);
# the first build runs them, as `make build` and `make demo` do.
DAILY_BUILD = ("--exclude-resource-type", "unit_test")
# dbt's lines for built nodes and problems ("12 of 65 OK created ...", "3 of 65 WARN 12 ..."),
# and its closing tally; the loader's progress log lines. Passing tests are logged with -v.
DBT_PROGRESS = re.compile(r"\b\d+ of \d+ (OK|WARN|ERROR|FAIL)\b|Done\. PASS=|Completed with")
LOADER_PROGRESS = re.compile(r"progress:|loaded|rejected|ERROR", re.IGNORECASE)
CHUNK = re.compile(r"\b(_hyper_\d+_\d+_chunk|_materialized_hypertable_\d+)\b")
INDEX_SCAN = re.compile(
    r'(Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) "?([^"\s]+)'
)
SEQ_SCAN = re.compile(r'Seq Scan on "?([^"\s]+)')
CHUNK_PREFIX = re.compile(r"_hyper_\d+_\d+_chunk")


class StepFailed(Exception):
    """A step could not run or its result was wrong; the message says which and why."""


@dataclass
class Finished:
    returncode: int
    seconds: float
    tail: list[str]


@dataclass
class Context:
    db: Database
    args: argparse.Namespace
    license: str
    dbt_vars: dict[str, Any]
    previous: dict[str, Any]  # steps of an earlier run on the same (kept) database
    steps: dict[str, Any] = field(default_factory=dict)
    _conns: dict[str, psycopg2.extensions.connection] = field(default_factory=dict)

    @property
    def edition(self) -> str:
        return EDITIONS.get(self.license, self.license)

    def conn(self, role: str) -> psycopg2.extensions.connection:
        """One autocommit connection per role, kept for the run."""
        if role not in self._conns or self._conns[role].closed:
            self._conns[role] = self.db.connect(role)
        return self._conns[role]

    def query(self, sql: str, params: Any = None, role: str = "reader") -> list[tuple]:
        with self.conn(role).cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: Any = None, role: str = "reader") -> Any:
        rows = self.query(sql, params, role)
        return rows[0][0] if rows else None

    def step_result(self, step: int) -> dict[str, Any] | None:
        """A step's figures from this run, else from an earlier run on this database."""
        return self.steps.get(str(step)) or self.previous.get(str(step))

    def reported(self) -> dict[str, Any]:
        """The steps the report shows: this run's, and those only earlier runs on this database
        measured (each says which run: its `command`)."""
        return {**self.previous, **self.steps}

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()


# --- running the loader and dbt ---------------------------------------------------------------


def run_streaming(cmd: list[str], env: dict[str, str], label: str, progress: re.Pattern[str]) -> Finished:
    """Run a command from the project folder, logging its progress lines as they come (dbt's
    per-node lines, the loader's progress) and keeping the tail of its output for errors."""
    log.debug("%s: %s", label, shlex.join(cmd))
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    tail: deque[str] = deque(maxlen=80)
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.rstrip()
        tail.append(line)
        if progress.search(line):
            log.info("%s | %s", label, line.strip())
        else:
            log.debug("%s | %s", label, line)
    returncode = proc.wait()
    return Finished(returncode, time.perf_counter() - started, list(tail))


def run_loader(ctx: Context, path: Path, label: str) -> dict[str, Any]:
    """The loader on a folder or file as the loader role; its summary's counts."""
    summary_path = ctx.db.work_dir / f"loader-{label.replace(' ', '-')}.json"
    summary_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(LOADER), str(path), "--workers", str(ctx.args.workers)]
    cmd += ["--summary-json", str(summary_path)]
    done = run_streaming(cmd, ctx.db.role_env("loader"), f"loader ({label})", LOADER_PROGRESS)
    # 2: finished, with rejected rows (the generator plants some defects).
    if done.returncode not in (0, 2) or not summary_path.exists():
        raise StepFailed(f"loader ({label}) failed with exit {done.returncode}:\n" + "\n".join(done.tail))
    summary = json.loads(summary_path.read_text())
    keys = ("files_seen", "files_loaded", "files_unchanged", "files_rejected", "rows_loaded", "rows_rejected")
    return {
        "seconds": done.seconds,
        "exit_code": done.returncode,
        **{key: summary[key] for key in keys},
        "files_by_mode": summary["files_by_mode"],
    }


def dbt_args(ctx: Context) -> list[str]:
    return ["--vars", json.dumps(ctx.dbt_vars)] if ctx.dbt_vars else []


def dbt_env(ctx: Context) -> dict[str, str]:
    """dbt as the transformer role, its output plain text for the log."""
    return {**ctx.db.role_env("transformer"), "DBT_USE_COLORS": "false"}


def run_dbt_build(ctx: Context, label: str, *extra: str) -> dict[str, Any]:
    """`dbt build` as the transformer role; its time and per-node breakdown. A failed build
    (exit code not 0: an error or a failing test) fails the step."""
    cmd = [str(DBT), "build", *dbt_args(ctx), *shlex.split(ctx.args.dbt_build_args), *extra]
    done = run_streaming(cmd, dbt_env(ctx), f"dbt ({label})", DBT_PROGRESS)
    results_path = ctx.db.work_dir / "target" / "run_results.json"
    breakdown = node_breakdown(json.loads(results_path.read_text()), ctx.args.top_nodes)
    if done.returncode != 0:
        raise StepFailed(
            f"dbt build ({label}) failed with exit {done.returncode}; failed nodes: {breakdown['failed']}\n"
            + "\n".join(dbt_summary(done.tail))
        )
    return {"seconds": done.seconds, **breakdown}


def dbt_start_up(ctx: Context) -> dict[str, Any]:
    """dbt's own start-up: a `dbt build` whose selection matches nothing (it reads the project,
    finds nothing to do and stops), what a no-op build costs at least."""
    cmd = [str(DBT), "build", *dbt_args(ctx), "--select", "tag:bench_selects_nothing"]
    done = run_streaming(cmd, dbt_env(ctx), "dbt (selecting nothing)", DBT_PROGRESS)
    if done.returncode != 0:
        raise StepFailed("dbt build selecting nothing failed:\n" + "\n".join(done.tail))
    return {"seconds": done.seconds}


def dbt_summary(tail: list[str]) -> list[str]:
    """dbt's closing summary (what failed and why), else the last lines it printed."""
    starts = [i for i, line in enumerate(tail) if "Completed with" in line]
    return tail[starts[-1] :] if starts else tail[-30:]


def node_name(unique_id: str) -> str:
    """'test.stock_analytics.stg_prices_positive.2094678098' -> 'test stg_prices_positive'."""
    kind, _, rest = unique_id.split(".", 2)
    if kind in ("test", "unit_test"):
        rest = re.sub(r"\.[0-9a-f]{10}$", "", rest)
    return f"{kind} {rest}"


def node_breakdown(run_results: dict[str, Any], top: int) -> dict[str, Any]:
    """The nodes of a dbt run by execution time, the time per resource type, the statuses.
    With threads > 1 the nodes overlap, so their times add up to more than the wall time."""
    nodes = [
        {
            "node": node_name(r["unique_id"]),
            "status": r["status"],
            "seconds": r["execution_time"],
        }
        for r in run_results["results"]
    ]
    by_type: dict[str, float] = {}
    statuses: dict[str, int] = {}
    for node in nodes:
        kind = node["node"].split(" ")[0]
        by_type[kind] = by_type.get(kind, 0.0) + node["seconds"]
        statuses[node["status"]] = statuses.get(node["status"], 0) + 1
    ranked = sorted(nodes, key=lambda n: n["seconds"], reverse=True)
    return {
        "dbt_elapsed_seconds": run_results.get("elapsed_time"),
        "nodes": len(nodes),
        "statuses": statuses,
        "seconds_by_type": by_type,
        "model_seconds": {
            n["node"].removeprefix("model "): n["seconds"] for n in nodes if n["node"].startswith("model ")
        },
        "top_nodes": ranked[:top],
        "failed": [n["node"] for n in nodes if n["status"] in ("error", "fail", "runtime error")],
    }


# --- the dataset --------------------------------------------------------------------------------


def price_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("stocks/*.csv"), *folder.glob("etfs/*.csv")])


def last_line(path: Path) -> list[str]:
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 400))
        return fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode().split(",")


def dataset_info(folder: Path) -> dict[str, Any]:
    marker = folder / "dataset.json"
    info: dict[str, Any] = {
        "path": str(folder.relative_to(PROJECT_DIR) if folder.is_relative_to(PROJECT_DIR) else folder)
    }
    if marker.exists():
        info |= json.loads(marker.read_text())
    return info


# --- timing queries -------------------------------------------------------------------------------


def timed(ctx: Context, sql: str, params: Any = None, role: str = "reader") -> tuple[float, list[tuple]]:
    """Wall seconds of a query, its rows fetched (what a client waits for)."""
    with ctx.conn(role).cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql, params)
        rows = cur.fetchall()
        return time.perf_counter() - started, rows


def explain(ctx: Context, sql: str, params: Any = None, role: str = "reader") -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of a query, with what it shows: the hypertable chunks it read
    against the chunks each hypertable has, and the indexes and sequential scans it used."""
    plan = "\n".join(row[0] for row in ctx.query(f"explain (analyze, buffers) {sql}", params, role))
    chunks = chunk_owners(ctx)
    read: dict[str, set[str]] = {}
    for line in plan.splitlines():
        if "never executed" in line:
            continue  # planned but excluded at run time
        for chunk in CHUNK.findall(line):
            read.setdefault(chunks.get(chunk, ("?", 0))[0], set()).add(chunk)
    totals: dict[str, int] = {}
    for hypertable, _ in chunks.values():
        totals[hypertable] = totals.get(hypertable, 0) + 1
    executed = "\n".join(line for line in plan.splitlines() if "never executed" not in line)
    return {
        "plan": plan,
        "chunks_read": {h: {"read": len(c), "of": totals.get(h, 0)} for h, c in read.items()},
        "index_scans": count_names(f"{kind} {name}" for kind, name in INDEX_SCAN.findall(executed)),
        "seq_scans": count_names(SEQ_SCAN.findall(executed)),
        "execution_ms": _plan_ms(plan, "Execution Time"),
        "planning_ms": _plan_ms(plan, "Planning Time"),
    }


def count_names(names: Any) -> dict[str, int]:
    """Scans by relation or index, a chunk's named after its hypertable's (`<chunk>_<index>`
    and `<chunk>` become `chunk_<index>` and `chunk`), with how many chunks each covered."""
    counts: dict[str, int] = {}
    for name in names:
        key = CHUNK_PREFIX.sub("chunk", name)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _plan_ms(plan: str, label: str) -> float | None:
    found = re.search(rf"{label}: ([\d.]+) ms", plan)
    return float(found.group(1)) if found else None


_chunk_cache: dict[str, dict[str, tuple[str, int]]] = {}


def chunk_owners(ctx: Context) -> dict[str, tuple[str, int]]:
    """Chunk name -> (its hypertable, 0), read once per database as the transformer (who owns them)."""
    if ctx.db.name not in _chunk_cache:
        rows = ctx.query(
            "select chunk_name, hypertable_schema || '.' || hypertable_name "
            "from timescaledb_information.chunks",
            role="transformer",
        )
        _chunk_cache[ctx.db.name] = {chunk: (hypertable, 0) for chunk, hypertable in rows}
    return _chunk_cache[ctx.db.name]


# --- step 1: first load + full build ----------------------------------------------------------------


def step_first_build(ctx: Context) -> dict[str, Any]:
    has_log = ctx.scalar("select to_regclass('raw.load_log') is not null", role="loader")
    loads = ctx.scalar("select count(*) from raw.load_log", role="loader") if has_log else 0
    if loads:
        raise StepFailed(
            f"step 1 is a first load: database {ctx.db.name} already has {loads} loads "
            "(run it in a fresh database, or leave step 1 out)"
        )
    log.info("step 1: loading %s ...", ctx.args.data)
    load = run_loader(ctx, ctx.args.data, "first load")
    log.info("step 1: loaded %s rows in %.1f s; dbt build ...", f"{load['rows_loaded']:,}", load["seconds"])
    build = run_dbt_build(ctx, "first build")
    rows = ctx.scalar("select count(*) from marts.fct_daily_prices")
    symbols = ctx.scalar("select count(*) from marts.dim_symbols where has_prices")
    if not rows or not symbols:
        raise StepFailed(f"after the first build the marts hold {rows} daily rows of {symbols} symbols")
    result = {
        "load": load,
        "build": build,
        "seconds": load["seconds"] + build["seconds"],
        "mart_rows": rows,
        "symbols": symbols,
        "database_bytes": ctx.scalar("select pg_database_size(current_database())", role="transformer"),
    }
    if ctx.args.floors:
        result["floors"] = measure_floors(ctx)
    return result


# --- step 1's floors: what the hardware must do at least, measured beside the build ------------------

FLOOR_SCHEMA = "bench_floors"
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
FLOOR_MODELS = {
    "staging": "stg_market_data__daily_prices",
    "trading days": "int_daily_prices__trading_days",
}


def compiled_clean_row_check(ctx: Context) -> str:
    """The project's clean-row check (macro clean_price_row) on raw.daily_prices' columns, as
    dbt compiles it: the rows whose texts plain casts read without error."""
    prices = ", ".join(f"'prices.{column}'" for column in PRICE_COLUMNS)
    inline = f"{{{{ clean_price_row('prices.date', [{prices}], 'prices.volume') }}}}"
    done = subprocess.run(
        [str(DBT), "compile", "--quiet", "--inline", inline],
        cwd=PROJECT_DIR,
        env=dbt_env(ctx),
        capture_output=True,
        text=True,
        check=False,
    )
    check = done.stdout.strip()
    if done.returncode != 0 or "prices.volume" not in check:
        raise StepFailed(f"dbt could not compile the clean-row check:\n{done.stdout}{done.stderr}")
    return check


def like_hypertable(ctx: Context, source: str, target: str, index: str) -> None:
    """An empty hypertable with a model's columns, chunk interval and unique index."""
    schema, name = source.split(".")
    interval = ctx.scalar(
        "select time_interval from timescaledb_information.dimensions "
        "where hypertable_schema = %s and hypertable_name = %s",
        (schema, name),
        role="transformer",
    )
    if interval is None:
        raise StepFailed(f"{source} is not a hypertable")
    ctx.query(
        f"create table {target} (like {source}); "
        f"select create_hypertable('{target}', by_range('trade_date', %s), create_default_indexes => false); "
        f"create unique index on {target} ({index})",
        (interval,),
        role="transformer",
    )


def table_columns(ctx: Context, relation: str) -> list[str]:
    return [
        column
        for (column,) in ctx.query(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            tuple(relation.split(".")),
            role="transformer",
        )
    ]


def timed_statement(ctx: Context, sql: str) -> tuple[float, int]:
    """Wall seconds of one statement as the transformer, and the rows it wrote."""
    with ctx.conn("transformer").cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql)
        return time.perf_counter() - started, cur.rowcount


def trading_days_select(ctx: Context, target_columns: list[str], staging_columns: set[str]) -> str:
    """Each column of the trading days' table from the staging copy's row or from the one ordered
    pass of price_series.trading_days (its result's fields by name)."""
    fields = {
        name
        for (name,) in ctx.query(
            "select attribute_name from information_schema.attributes where udt_name = ("
            "select t.typname from pg_proc p join pg_type t on t.oid = p.prorettype "
            "join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'price_series' and p.proname = 'trading_days')",
            role="transformer",
        )
    }
    if not fields:
        raise StepFailed("price_series.trading_days and its result type were not found")
    derived = {"macd_histogram": "(day_values).macd - (day_values).macd_signal"}
    expressions = []
    for column in target_columns:
        if column in derived:
            expressions.append(f"{derived[column]} as {column}")
        elif column in staging_columns:
            expressions.append(column)
        elif column in fields:
            expressions.append(f"(day_values).{column} as {column}")
        else:
            raise StepFailed(f"the trading days' column {column}: neither staging's nor the pass's")
    return ", ".join(expressions)


def measure_floors(ctx: Context) -> dict[str, Any]:
    """The three floors of the first build, one after the other in this database (after the
    build, so on the same rows and the same cache): a `\\copy` of the raw rows into an unindexed
    text table (the loader's), one INSERT ... SELECT casting raw.daily_prices into a copy of
    staging's hypertable with its unique index (staging's), one ordered pass of the
    trading days' window function over that copy into a copy of their hypertable (theirs)."""
    log.info("step 1: the floors: \\copy of the raw rows ...")
    copy = psql_copy(ctx.db, ctx.args.data)
    raw_rows = ctx.scalar("select count(*) from raw.daily_prices", role="loader")
    if copy.rows != raw_rows:
        raise StepFailed(f"the \\copy floor read {copy.rows:,} rows, the loader wrote {raw_rows:,}")
    staging = relation_of(ctx, FLOOR_MODELS["staging"])
    trading_days = relation_of(ctx, FLOOR_MODELS["trading days"])
    check = compiled_clean_row_check(ctx)
    floor_staging, floor_trading_days = f"{FLOOR_SCHEMA}.daily_prices", f"{FLOOR_SCHEMA}.trading_days"
    ctx.query(
        f"set client_min_messages = warning; drop schema if exists {FLOOR_SCHEMA} cascade; "
        f"create schema {FLOOR_SCHEMA}",
        role="transformer",
    )
    try:
        like_hypertable(ctx, staging, floor_staging, "symbol, trade_date")
        like_hypertable(ctx, trading_days, floor_trading_days, "symbol, trade_date desc")
        casts = ", ".join(f"cast(prices.{column} as double precision)" for column in PRICE_COLUMNS)
        log.info("step 1: the floors: raw text cast into a hypertable ...")
        staging_seconds, staging_rows = timed_statement(
            ctx,
            f"insert into {floor_staging} (symbol, trade_date, asset_type, {', '.join(PRICE_COLUMNS)}, "
            "volume, source_row_count, load_id, line_number, loaded_at) "
            f"select load_log.symbol, cast(prices.date as date), load_log.asset_type, {casts}, "
            "cast(prices.volume as bigint), 1, prices.load_id, prices.line_number, load_log.finished_at "
            "from raw.daily_prices as prices "
            "inner join raw.load_log as load_log on prices.load_id = load_log.load_id "
            f"where {check} "
            "on conflict (symbol, trade_date) do nothing",
        )
        columns = table_columns(ctx, trading_days)
        log.info("step 1: the floors: one ordered pass into the trading days' hypertable ...")
        pass_seconds, pass_rows = timed_statement(
            ctx,
            f"insert into {floor_trading_days} ({', '.join(columns)}) "
            f"select {trading_days_select(ctx, columns, set(table_columns(ctx, staging)))} from ("
            "select *, price_series.trading_days("
            "cast(null as bigint), close, high, low, adj_close, cast(null as double precision[])"
            ") over (partition by symbol order by trade_date rows unbounded preceding) as day_values "
            f"from {floor_staging} where close is not null) as passed",
        )
        model_rows = {
            "staging": ctx.scalar(f"select count(*) from {staging}", role="transformer"),
            "trading days": ctx.scalar(f"select count(*) from {trading_days}", role="transformer"),
        }
    finally:
        ctx.query(f"drop schema if exists {FLOOR_SCHEMA} cascade", role="transformer")
    return {
        "loader": {
            "seconds": copy.seconds,
            "rows": copy.rows,
            "what": "psql \\copy, 1 stream, unindexed text table",
        },
        "staging": {
            "seconds": staging_seconds,
            "rows": staging_rows,
            "model_rows": model_rows["staging"],
            "what": "insert ... select: raw text cast (rows the clean-row check passes) into a hypertable "
            "with the unique (symbol, trade_date) index",
        },
        "trading days": {
            "seconds": pass_seconds,
            "rows": pass_rows,
            "model_rows": model_rows["trading days"],
            "what": "insert ... select: one ordered pass of price_series.trading_days over the staging "
            "copy into a hypertable with the unique (symbol, trade_date desc) index",
        },
    }


# --- step 2: daily refresh ----------------------------------------------------------------------------


def step_daily_refresh(ctx: Context) -> dict[str, Any]:
    grown = ctx.args.grown
    if not grown.exists():
        log.info("step 2: writing %s (every file of %s one line longer) ...", grown, ctx.args.data)
        grow_by_one_line(ctx.args.data, grown)
    files = price_files(grown)
    # The new bar of each file: one with a close becomes a mart row.
    new_bars = [last_line(path) for path in files]
    expected = sum(1 for bar in new_bars if len(bar) > 4 and bar[4].strip())
    first_new = min(bar[0] for bar in new_bars)
    count_new = "select count(*) from marts.fct_daily_prices where trade_date >= %s"
    before = ctx.scalar(count_new, (first_new,))
    log.info("step 2: loading %s (%s files) ...", grown, f"{len(files):,}")
    load = run_loader(ctx, grown, "daily refresh")
    appended = load["files_by_mode"].get("append", 0)
    if appended != len(files):
        raise StepFailed(
            f"the daily refresh should append to all {len(files):,} files, but the loader appended "
            f"{appended:,} (modes {load['files_by_mode']}, {load['files_unchanged']:,} unchanged): "
            "was it applied to this database already?"
        )
    log.info("step 2: appended %s rows in %.1f s; dbt build ...", f"{load['rows_loaded']:,}", load["seconds"])
    build = run_dbt_build(ctx, "daily refresh", *DAILY_BUILD)
    added = ctx.scalar(count_new, (first_new,)) - before
    if added != expected:
        raise StepFailed(
            f"the daily refresh should add {expected:,} rows to fct_daily_prices, it added {added:,}"
        )
    result: dict[str, Any] = {
        "load": load,
        "build": build,
        "seconds": load["seconds"] + build["seconds"],
        "mart_rows_added": added,
        "no_op_build": run_dbt_build(ctx, "no-op build (nothing new)", *DAILY_BUILD),
        "dbt_start_up": dbt_start_up(ctx),
    }
    first = ctx.step_result(1)
    if first:
        result["speedup_vs_first_build"] = first["seconds"] / result["seconds"]
    if ctx.args.full_refresh_check:
        result["full_refresh_check"] = full_refresh_check(ctx, "after the daily refresh")
    return result


# --- step 3: one symbol's corrected history -----------------------------------------------------------


def correction_file(ctx: Context, symbol: str) -> tuple[Path, list[tuple[str, float]], int]:
    """A full history of `symbol` (its latest live file) with a few old bars changed: five bars
    in the oldest fifth of its history get every price 5% higher. Returns the file, the changed
    (date, new close) pairs and the file's bar count. Each call changes the latest file again,
    so a rerun on a kept database loads new content, never an unchanged file."""
    latest = ctx.scalar(
        "select file_path from raw.load_log where symbol = %s and file_kind = 'prices' "
        "and status = 'loaded' order by load_id desc limit 1",
        (symbol,),
        role="loader",
    )
    if latest is None:
        raise StepFailed(f"no live load of {symbol} in raw.load_log")
    source = Path(latest) if Path(latest).is_absolute() else PROJECT_DIR / latest
    lines = source.read_text().splitlines(keepends=True)
    header, bars = lines[0], lines[1:]
    priced = [i for i, line in enumerate(bars) if len(f := line.split(",")) == 7 and f[4].strip()]
    if len(priced) < 50:
        raise StepFailed(f"{symbol}: {len(priced)} bars with a close is too short a history to correct")
    changed = []
    for share in (0.02, 0.06, 0.10, 0.14, 0.18):
        i = priced[int(share * len(priced))]
        day, *prices, volume = bars[i].rstrip("\n").split(",")
        new = [repr(float(p) * 1.05) if p.strip() else p for p in prices]
        bars[i] = ",".join([day, *new, volume]) + "\n"
        changed.append((day, float(new[3])))
    # The folder name tells the loader stock or ETF, as in the dataset.
    target = ctx.db.work_dir / "correction" / source.parent.name / f"{symbol}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + "".join(bars))
    return target, changed, len(bars)


def step_correction(ctx: Context) -> dict[str, Any]:
    symbol = ctx.args.correct_symbol or ctx.scalar(
        "select symbol from marts.dim_symbols where has_prices order by trading_days desc, symbol limit 1"
    )
    path, changed, bars = correction_file(ctx, symbol)
    log.info("step 3: loading a corrected full history of %s (%s bars, 5 changed) ...", symbol, f"{bars:,}")
    load = run_loader(ctx, path, "correction")
    if load["files_by_mode"] != {"merge": 1}:
        raise StepFailed(
            f"the corrected file should load as one merge, the loader did {load['files_by_mode']}"
        )
    log.info("step 3: merged in %.1f s; dbt build ...", load["seconds"])
    build = run_dbt_build(ctx, "correction", *DAILY_BUILD)
    # The corrected closes reached the marts, and the moving averages of the whole symbol agree
    # with a frame average over its (corrected) closes: the running sums were recomputed.
    worst_close = 0.0
    for day, close in changed:
        got = ctx.scalar(
            "select close from marts.fct_daily_prices where symbol = %s and trade_date = %s", (symbol, day)
        )
        if got is None:
            raise StepFailed(f"{symbol} {day}: no row in fct_daily_prices after the correction")
        worst_close = max(worst_close, abs(got - close) / abs(close))
    if worst_close > 1e-12:
        raise StepFailed(
            f"{symbol}: the corrected closes did not reach fct_daily_prices (rel diff {worst_close:.3g})"
        )
    worst_sma = ctx.scalar(
        f"select max(greatest({', '.join(f'abs(m.sma_{n} - f.sma_{n}) / abs(f.sma_{n})' for n in WINDOWS)})) "
        f"from marts.fct_daily_moving_averages m join ({frame_sql('', 'where symbol = %(s)s')}) f "
        "using (symbol, trade_date) where m.symbol = %(s)s",
        {"s": symbol},
    )
    if worst_sma is None or worst_sma > 1e-9:
        raise StepFailed(
            f"{symbol}: moving averages disagree with the corrected closes (rel diff {worst_sma})"
        )
    result = {
        "symbol": symbol,
        "bars": bars,
        "changed_dates": [day for day, _ in changed],
        "load": load,
        "build": build,
        "seconds": load["seconds"] + build["seconds"],
        "max_rel_diff_close": worst_close,
        "max_rel_diff_sma": worst_sma,
    }
    if ctx.args.full_refresh_check:
        result["full_refresh_check"] = full_refresh_check(ctx, "after the correction")
    return result


# --- steps 2 and 3: the incremental state against a full rebuild -----------------------------------------

CHECK_SCHEMA = "bench_incremental_state"
DAILY_KEY = ("symbol", "trade_date")
PERIOD_KEY = ("symbol", "period_start")
# Every mart, and the tables they are built from (a difference there says where it began).
CHECKED_RELATIONS: dict[str, tuple[str, ...]] = {
    "stg_market_data__daily_prices": DAILY_KEY,
    "int_daily_prices__trading_days": DAILY_KEY,
    "int_daily_prices__symbol_firsts": ("symbol",),
    "int_daily_prices__symbol_spans": ("symbol",),
    "fct_daily_prices": DAILY_KEY,
    "fct_daily_moving_averages": DAILY_KEY,
    "fct_daily_indicators": DAILY_KEY,
    "fct_latest_day": ("symbol",),
    "fct_price_averages_weekly": PERIOD_KEY,
    "fct_price_averages_monthly": PERIOD_KEY,
    "fct_price_averages_quarterly": PERIOD_KEY,
    "fct_price_averages_yearly": PERIOD_KEY,
    "dim_symbols": ("symbol",),
}
# Numbers agree to this relative difference; every other value exactly.
FULL_REFRESH_TOLERANCE = 1e-12


def relation_of(ctx: Context, name: str) -> str:
    """The schema-qualified table or view dbt built for a model (not the check's copy)."""
    schemas = [
        schema
        for (schema,) in ctx.query(
            "select table_schema from information_schema.tables "
            "where table_name = %s and table_schema not in %s",
            (name, (CHECK_SCHEMA, FLOOR_SCHEMA)),
            role="transformer",
        )
    ]
    if len(schemas) != 1:
        raise StepFailed(f"expected one relation {name}, found it in {schemas or 'no schema'}")
    return f"{schemas[0]}.{name}"


def comparison_sql(ctx: Context, name: str, rebuilt: str, key: tuple[str, ...]) -> str:
    """Rows only on one side, rows whose values differ, and the largest relative difference of a
    number, between a copy of the incremental state and the rebuilt relation."""
    columns = ctx.query(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        tuple(rebuilt.split(".")),
        role="transformer",
    )
    if not columns:
        raise StepFailed(f"{rebuilt} has no columns")
    equal, differences = [], []
    for column, data_type in columns:
        if column in key:
            continue
        a, b = f"kept.{column}", f"rebuilt.{column}"
        if data_type in ("double precision", "numeric", "real"):
            relative = f"abs({a} - {b}) / nullif(greatest(abs({a}), abs({b})), 0)"
            equal.append(
                f"({a} is not distinct from {b} or coalesce({relative} <= {FULL_REFRESH_TOLERANCE}, false))"
            )
            # The largest finite difference: a NaN or an infinity on one side counts as a
            # differing row, not as the figure.
            differences.append(f"case when {a} <> {b} and abs({a} - {b}) < 'Infinity' then {relative} end")
        else:
            equal.append(f"{a} is not distinct from {b}")
    on = " and ".join(f"kept.{k} = rebuilt.{k}" for k in key)
    both = f"kept.{key[0]} is not null and rebuilt.{key[0]} is not null"
    return (
        "select count(*) filter (where kept." + key[0] + " is null), "
        "count(*) filter (where rebuilt." + key[0] + " is null), "
        f"count(*) filter (where {both} and not ({' and '.join(equal) or 'true'})), "
        f"max(greatest({', '.join(differences) or '0'})), count(*) "
        f"from {CHECK_SCHEMA}.{name} as kept full join {rebuilt} as rebuilt on {on}"
    )


def full_refresh_check(ctx: Context, when: str) -> dict[str, Any]:
    """Every mart (and staging and the trading days) as the incremental builds left it, copied,
    then `dbt build --full-refresh`, then compared row by row: the same keys, every value equal
    (numbers to FULL_REFRESH_TOLERANCE relative). A difference fails the step."""
    relations = {name: relation_of(ctx, name) for name in CHECKED_RELATIONS}
    log.info("full-refresh check %s: copying %d relations ...", when, len(relations))
    ctx.query(
        f"set client_min_messages = warning; drop schema if exists {CHECK_SCHEMA} cascade; "
        f"create schema {CHECK_SCHEMA}",
        role="transformer",
    )
    try:
        for name, relation in relations.items():
            ctx.query(f"create table {CHECK_SCHEMA}.{name} as select * from {relation}", role="transformer")
        log.info("full-refresh check %s: dbt build --full-refresh ...", when)
        rebuild = run_dbt_build(ctx, f"full refresh {when}", "--full-refresh")
        log.info("full-refresh check %s: comparing ...", when)
        compared: dict[str, Any] = {}
        for name, relation in relations.items():
            only_rebuilt, only_kept, differing, max_rel, rows = ctx.query(
                comparison_sql(ctx, name, relation, CHECKED_RELATIONS[name]), role="transformer"
            )[0]
            compared[name] = {
                "rows": rows,
                "only_in_rebuilt": only_rebuilt,
                "only_in_incremental": only_kept,
                "differing": differing,
                "max_rel_diff": float(max_rel or 0.0),
            }
    finally:
        ctx.query(f"drop schema if exists {CHECK_SCHEMA} cascade", role="transformer")
    wrong = {
        name: c
        for name, c in compared.items()
        if c["only_in_rebuilt"] or c["only_in_incremental"] or c["differing"]
    }
    if wrong:
        raise StepFailed(f"{when}, the incremental state differs from a --full-refresh: {wrong}")
    return {
        "when": when,
        "rebuild_seconds": rebuild["seconds"],
        "relations": compared,
        "rows_compared": sum(c["rows"] for c in compared.values()),
        "max_rel_diff": max(c["max_rel_diff"] for c in compared.values()),
    }


# --- step 4: every row's moving averages ------------------------------------------------------------


def frame_sql(cast: str, where: str) -> str:
    """The textbook moving averages: avg() over a ROWS frame per window, null until the symbol
    has that many rows (as the mart's)."""
    columns = ",\n    ".join(
        f"case when row_number() over w >= {n} then avg(close{cast}) over "
        f"(w rows between {n - 1} preceding and current row) end as sma_{n}"
        for n in WINDOWS
    )
    return (
        f"select symbol, trade_date,\n    {columns}\nfrom marts.fct_daily_prices {where}\n"
        "window w as (partition by symbol order by trade_date)"
    )


def sums_sql(inner: str) -> str:
    aggregates = ", ".join(f"count(sma_{n}), sum(sma_{n})::float8" for n in WINDOWS)
    return f"select count(*), {aggregates} from ({inner}) q"


def step_moving_averages(ctx: Context) -> dict[str, Any]:
    where, scope = "", "every row"
    if ctx.args.ma_symbols:
        bound = ctx.scalar(
            "select symbol from marts.dim_symbols where has_prices order by symbol offset %s limit 1",
            (ctx.args.ma_symbols - 1,),
        )
        if bound is not None:
            where, scope = f"where symbol <= '{bound}'", f"the first {ctx.args.ma_symbols:,} symbols"
    cases = {
        "mart": sums_sql(f"select * from marts.fct_daily_moving_averages {where}"),
        "float8_frame": sums_sql(frame_sql("", where)),
        "numeric_frame": sums_sql(frame_sql("::numeric", where)),
    }
    # Untimed, the mart's query once: the first run reads the rows from disk (a count(*) does
    # not warm the same pages), which would charge the mart alone with the cold cache.
    log.info("step 4: warming the cache (the mart's query, untimed) ...")
    timed(ctx, cases["mart"])
    figures: dict[str, Any] = {}
    for name, sql in cases.items():
        times = []
        for i in range(ctx.args.repeat):
            log.info("step 4: %s (%s), run %d/%d ...", name, scope, i + 1, ctx.args.repeat)
            seconds, rows = timed(ctx, sql)
            times.append(seconds)
            log.info("step 4: %s took %.1f s", name, seconds)
        row = rows[0]
        figures[name] = {
            "seconds": min(times),
            "all_seconds": times,
            "rows": row[0],
            "non_null": {f"sma_{n}": row[1 + 2 * i] for i, n in enumerate(WINDOWS)},
            "sums": {f"sma_{n}": row[2 + 2 * i] for i, n in enumerate(WINDOWS)},
        }
    mart = figures["mart"]
    worst = 0.0
    for name in ("float8_frame", "numeric_frame"):
        other = figures[name]
        if other["rows"] != mart["rows"] or other["non_null"] != mart["non_null"]:
            raise StepFailed(
                f"{name} and the mart differ in rows: {other['rows']} / {other['non_null']} "
                f"against {mart['rows']} / {mart['non_null']}"
            )
        for key, value in mart["sums"].items():
            diff = abs(value - other["sums"][key]) / max(abs(value), abs(other["sums"][key]), 1e-300)
            worst = max(worst, diff)
    if worst > 1e-9:
        raise StepFailed(f"the mart's moving averages and the frame averages disagree: rel diff {worst:.3g}")
    if where:  # the mart over every row too, for scale (the frames would take too long there)
        log.info("step 4: mart (every row) ...")
        seconds, rows = timed(ctx, sums_sql("select * from marts.fct_daily_moving_averages"))
        figures["mart_every_row"] = {"seconds": seconds, "rows": rows[0][0]}
    return {
        "scope": scope,
        "rows": mart["rows"],
        **figures,
        "max_rel_diff": worst,
        "float8_ratio": figures["float8_frame"]["seconds"] / mart["seconds"],
        "numeric_ratio": figures["numeric_frame"]["seconds"] / mart["seconds"],
    }


# --- step 5: latest moving averages of every symbol -----------------------------------------------------

LATEST_SQL = (
    "select distinct on (symbol) * from marts.fct_daily_moving_averages order by symbol, trade_date desc"
)
# The same question from the screener's table (one row per symbol), with the moving averages
# it keeps (all but sma_30).
LATEST_DAY_SQL = "select symbol, trade_date, close, sma_20, sma_50, sma_200 from marts.fct_latest_day"


def step_latest(ctx: Context) -> dict[str, Any]:
    symbols = ctx.scalar("select count(*) from marts.dim_symbols where has_prices")
    times: dict[str, list[float]] = {"distinct_on": [], "latest_day": []}
    rows: dict[str, list[tuple]] = {}
    for _ in tqdm(
        range(ctx.args.latest_runs), desc="step 5: latest MAs", unit="run", disable=not sys.stderr.isatty()
    ):
        # side by side, in turn, so that both see the same server
        for form, sql in (("distinct_on", LATEST_SQL), ("latest_day", LATEST_DAY_SQL)):
            seconds, rows[form] = timed(ctx, sql)
            times[form].append(seconds)
    if len(rows["distinct_on"]) != symbols:
        raise StepFailed(f"latest MAs: {len(rows['distinct_on']):,} rows for {symbols:,} symbols with prices")
    # fct_daily_moving_averages: symbol, trade_date, close, sma_20, sma_30, sma_50, sma_200
    shared = sorted((*row[:4], *row[5:7]) for row in rows["distinct_on"])
    if sorted(rows["latest_day"]) != shared:
        raise StepFailed(
            "latest MAs: fct_latest_day differs from the latest row of fct_daily_moving_averages"
        )
    medians = {form: statistics.median(seconds) for form, seconds in times.items()}
    log.info(
        "step 5: %s rows, median %.3f s (`distinct on`), %.4f s (fct_latest_day) of %d runs",
        f"{len(rows['distinct_on']):,}",
        medians["distinct_on"],
        medians["latest_day"],
        len(times["distinct_on"]),
    )
    return {
        "rows": len(rows["distinct_on"]),
        "first_seconds": times["distinct_on"][0],
        "median_seconds": medians["distinct_on"],
        "best_seconds": min(times["distinct_on"]),
        "all_seconds": times["distinct_on"],
        "latest_day_median_seconds": medians["latest_day"],
        "latest_day_all_seconds": times["latest_day"],
        "explain": explain(ctx, LATEST_SQL),
    }


# --- step 6: single-symbol queries ----------------------------------------------------------------------

MONTHLY_SQL = "select * from marts.fct_price_averages_monthly where symbol = %(symbol)s order by period_start"
MA_YEAR_SQL = (
    "select * from marts.fct_daily_moving_averages where symbol = %(symbol)s "
    "and trade_date between %(start)s and %(end)s order by trade_date"
)


def compiled_quarter_analysis(ctx: Context) -> str:
    """analyses/avg_volume_last_quarter.sql as dbt compiles it, the symbol a query parameter."""
    vars_ = {**ctx.dbt_vars, "symbol": SYMBOL_PLACEHOLDER}
    cmd = [str(DBT), "compile", "--quiet", "-s", "avg_volume_last_quarter", "--vars", json.dumps(vars_)]
    done = run_streaming(cmd, dbt_env(ctx), "dbt compile", DBT_PROGRESS)
    compiled = (
        ctx.db.work_dir
        / "target"
        / "compiled"
        / "stock_analytics"
        / "analyses"
        / "avg_volume_last_quarter.sql"
    )
    if done.returncode != 0 or not compiled.exists():
        raise StepFailed("dbt compile of avg_volume_last_quarter failed:\n" + "\n".join(done.tail))
    sql = compiled.read_text().replace("%", "%%")
    literal = f"'{SYMBOL_PLACEHOLDER}'"
    if literal not in sql:
        raise StepFailed(f"the compiled analysis has no {literal} to bind")
    return sql.replace(literal, "%(symbol)s")


def draw_symbols(ctx: Context) -> list[dict[str, Any]]:
    """--symbols symbols with a year and a half of history at random (seeded), the longest
    history first (the one the EXPLAINs show); each with a complete year inside its history."""
    rows = ctx.query(
        "select symbol, first_trade_date, last_trade_date, trading_days from marts.dim_symbols "
        "where has_prices and trading_days >= 380 order by trading_days desc, symbol"
    )
    if not rows:
        raise StepFailed("no symbol with 380 trading days in dim_symbols")
    rng = random.Random(ctx.args.seed)
    chosen = [rows[0], *rng.sample(rows[1:], min(ctx.args.symbols - 1, len(rows) - 1))]
    drawn = []
    for symbol, first, last, days in chosen:
        year = rng.randint(first.year + 1, max(first.year + 1, last.year - 1))
        drawn.append(
            {"symbol": symbol, "trading_days": days, "start": date(year, 1, 1), "end": date(year, 12, 31)}
        )
    return drawn


def step_single_symbol(ctx: Context) -> dict[str, Any]:
    symbols = draw_symbols(ctx)
    queries = {
        "avg_volume_last_quarter": (compiled_quarter_analysis(ctx), "transformer"),
        "monthly_all_years": (MONTHLY_SQL, "reader"),
        "moving_averages_one_year": (MA_YEAR_SQL, "reader"),
    }
    out: dict[str, Any] = {"symbols": len(symbols), "explain_symbol": symbols[0]["symbol"]}
    for name, (sql, role) in queries.items():
        for i in range(ctx.args.warmup):  # unmeasured: the caches a serving database has warm
            ctx.query(sql, symbols[i % len(symbols)], role)
        times, empty = [], []
        bar = tqdm(range(ctx.args.runs), desc=f"step 6: {name}", unit="run", disable=not sys.stderr.isatty())
        for i in bar:
            params = symbols[i % len(symbols)]
            seconds, rows = timed(ctx, sql, params, role)
            times.append(seconds * 1000)
            if not rows:
                empty.append(params["symbol"])
        if empty:
            raise StepFailed(f"{name}: no rows for {sorted(set(empty))}")
        result = {
            "runs": len(times),
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "max_ms": max(times),
            "role": role,
            "sql": sql,
            "explain": explain(ctx, sql, symbols[0], role),
        }
        log.info(
            "step 6: %s p50 %.1f ms, p95 %.1f ms over %d runs",
            name,
            result["p50_ms"],
            result["p95_ms"],
            len(times),
        )
        out[name] = result
    return out


# --- step 7: the HTTP API -------------------------------------------------------------------------------

API_PROGRESS = re.compile(r"requests/s|CPU share|raw figures")


def step_api(ctx: Context) -> dict[str, Any]:
    """bench/bench_api.py on this database as the reader: its API on a free port, 16 concurrent
    clients, its request mix; p95, requests/s, and the share of the cores each side took."""
    cmd = [sys.executable, str(BENCH_DIR / "bench_api.py"), "--database", ctx.db.name]
    cmd += ["--requests", str(ctx.args.api_requests), "--concurrency", "16", "--seed", str(ctx.args.seed)]
    done = run_streaming(cmd, ctx.db.role_env("reader"), "bench_api", API_PROGRESS)
    paths = [line.split()[-1] for line in done.tail if line.startswith("raw figures: ")]
    if done.returncode != 0 or not paths:
        raise StepFailed(f"bench_api.py failed with exit {done.returncode}:\n" + "\n".join(done.tail))
    figures = json.loads((PROJECT_DIR / paths[-1]).read_text())
    overall = figures["overall"]
    return {
        "requests": ctx.args.api_requests,
        "concurrency": 16,
        "p50_ms": overall["p50_ms"],
        "p95_ms": overall["p95_ms"],
        "errors": overall["errors"],
        "requests_per_s": figures["requests_per_s"],
        "client_cpu_share": figures["client_cpu_share"],
        "api_cpu_share": figures["api_cpu_share"],
        "api_postgres_cpu_share": figures["api_postgres_cpu_share"],
        "figures": paths[-1],
    }


STEPS = {
    1: step_first_build,
    2: step_daily_refresh,
    3: step_correction,
    4: step_moving_averages,
    5: step_latest,
    6: step_single_symbol,
    7: step_api,
}


# --- targets and the report ---------------------------------------------------------------------------


@dataclass
class Row:
    step: int
    measure: str
    figure: str
    target: str = ""
    verdict: str = ""


def at_most(value: float, limit: float, unit: str, digits: int = 1) -> str:
    if value <= limit:
        return "met"
    if unit == "x":  # a ratio against a ratio
        return f"missed by {value / limit:.1f}x"
    return f"missed by {value - limit:,.{digits}f} {unit} ({value / limit:.1f}x the target)"


def at_least(value: float, limit: float) -> str:
    return "met" if value >= limit else f"missed: {value:.1f}x of {limit:.0f}x"


def seconds(value: float) -> str:
    return f"{value:,.1f} s" if value >= 10 else f"{value:.2f} s"


def load_and_build(r: dict[str, Any]) -> str:
    load, build = r["load"]["seconds"], r["build"]["seconds"]
    return f"{seconds(r['seconds'])} (load {seconds(load)} + build {seconds(build)})"


def report_rows(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    s = ctx.reported()
    if r := s.get("1"):
        rows.append(
            Row(
                1,
                "first load + full `dbt build`",
                load_and_build(r),
                "aspiration: 300 s",
                at_most(r["seconds"], 300, "s"),
            )
        )
        by_type = r["build"]["seconds_by_type"]
        tests = by_type.get("test", 0.0) + by_type.get("unit_test", 0.0)
        rows.append(
            Row(
                1,
                f"the first build's tests, node time (data tests {seconds(by_type.get('test', 0.0))}, "
                f"unit tests {seconds(by_type.get('unit_test', 0.0))})",
                seconds(tests),
                "<= 60 s",
                at_most(tests, 60, "s"),
            )
        )
        if floors := r.get("floors"):
            rows += floor_rows(r, floors)
    if r := s.get("2"):
        rows.append(
            Row(
                2,
                "daily refresh: load (append) + the daily `dbt build`",
                load_and_build(r),
                "<= 20 s",
                at_most(r["seconds"], 20, "s"),
            )
        )
        if "speedup_vs_first_build" in r:
            rows.append(Row(2, "first build / daily refresh", f"{r['speedup_vs_first_build']:.1f}x"))
        if "no_op_build" in r:
            start_up = r["dbt_start_up"]["seconds"]
            rows.append(
                Row(
                    2,
                    f"a no-op daily `dbt build` (nothing new) against dbt's start-up ({seconds(start_up)}: "
                    "a build selecting nothing)",
                    f"{seconds(r['no_op_build']['seconds'])}: start-up + "
                    f"{seconds(r['no_op_build']['seconds'] - start_up)}",
                    "<= start-up + 3 s",
                    at_most(r["no_op_build"]["seconds"] - start_up, 3, "s"),
                )
            )
    if (r := s.get("2")) and (check := r.get("full_refresh_check")):
        rows.append(full_refresh_row(2, check))
    if r := s.get("3"):
        rows.append(
            Row(
                3,
                f"one symbol's corrected history ({r['symbol']}, {r['bars']:,} bars, merge): "
                "load + the daily `dbt build`",
                load_and_build(r),
                "<= 20 s",
                at_most(r["seconds"], 20, "s"),
            )
        )
        if check := r.get("full_refresh_check"):
            rows.append(full_refresh_row(3, check))
    if r := s.get("4"):
        rows.append(
            Row(
                4,
                f"sum of the 4 SMAs, {r['scope']} ({r['rows']:,} rows): `fct_daily_moving_averages`",
                seconds(r["mart"]["seconds"]),
            )
        )
        rows.append(
            Row(
                4,
                "the same from a float8 `avg() over` ROWS frame",
                f"{seconds(r['float8_frame']['seconds'])}: {r['float8_ratio']:.1f}x the mart",
                ">= 10x",
                at_least(r["float8_ratio"], 10),
            )
        )
        rows.append(
            Row(
                4,
                "the same from a numeric `avg() over` ROWS frame",
                f"{seconds(r['numeric_frame']['seconds'])}: {r['numeric_ratio']:.1f}x the mart",
                ">= 4x",
                at_least(r["numeric_ratio"], 4),
            )
        )
        if every := r.get("mart_every_row"):
            rows.append(
                Row(
                    4,
                    f"the mart's sum over every row ({every['rows']:,} rows), for scale",
                    seconds(every["seconds"]),
                )
            )
        rows.append(
            Row(
                4,
                "sums agree (mart vs both frames)",
                f"max rel diff {r['max_rel_diff']:.1e}",
                "<= 1e-9",
                "met",
            )
        )
    if r := s.get("5"):
        rows.append(
            Row(
                5,
                f"latest MAs of every symbol ({r['rows']:,} rows), median of {len(r['all_seconds'])}",
                f"{r['median_seconds']:,.3f} s (first run {r['first_seconds']:,.3f} s)",
                "<= 1 s",
                at_most(r["median_seconds"], 1, "s", 3),
            )
        )
        if "latest_day_median_seconds" in r:
            rows.append(
                Row(
                    5,
                    "the same from `fct_latest_day` (without sma_30), median of the same runs, in turn",
                    f"{r['latest_day_median_seconds'] * 1000:,.1f} ms "
                    f"({r['median_seconds'] / r['latest_day_median_seconds']:,.0f}x faster)",
                    "<= 50 ms",
                    at_most(r["latest_day_median_seconds"] * 1000, 50, "ms", 1),
                )
            )
    if r := s.get("6"):
        for name, label in (
            ("avg_volume_last_quarter", "average volume, last complete quarter"),
            ("monthly_all_years", "monthly averages, all years"),
            ("moving_averages_one_year", "one year of moving averages"),
        ):
            q = r[name]
            rows.append(
                Row(
                    6,
                    f"{label}: p95 of {q['runs']} runs ({r['symbols']} symbols)",
                    f"{q['p95_ms']:.1f} ms (p50 {q['p50_ms']:.1f})",
                    "<= 20 ms",
                    at_most(q["p95_ms"], 20, "ms"),
                )
            )
    if r := s.get("7"):
        rows.append(
            Row(
                7,
                f"the HTTP API, {r['concurrency']} concurrent clients, bench_api.py's request mix "
                f"({r['requests']:,} requests, {r['errors']} errors): p95",
                f"{r['p95_ms']:.1f} ms (p50 {r['p50_ms']:.1f}; {r['requests_per_s']:,.0f} requests/s; "
                f"the cores: client {r['client_cpu_share']:.0%}, API workers {r['api_cpu_share']:.0%}, "
                f"their PostgreSQL backends {r['api_postgres_cpu_share']:.0%})",
                "<= 50 ms",
                at_most(r["p95_ms"], 50, "ms"),
            )
        )
    return rows


def full_refresh_row(step: int, check: dict[str, Any]) -> Row:
    return Row(
        step,
        f"{check['when']}: {len(check['relations'])} relations (every mart, staging, the trading days; "
        f"{check['rows_compared']:,} rows) against a `--full-refresh` ({seconds(check['rebuild_seconds'])})",
        f"equal; max rel diff {check['max_rel_diff']:.1e}",
        f"equal to {FULL_REFRESH_TOLERANCE:.0e}",
        "met",
    )


def floor_rows(r: dict[str, Any], floors: dict[str, Any]) -> list[Row]:
    """Step 1 against its floors: the loader, each model beside its own, the whole against their sum."""
    total = sum(f["seconds"] for f in floors.values())
    rows = [
        Row(
            1,
            "the floors, one after the other after the build: \\copy "
            f"{seconds(floors['loader']['seconds'])} + cast into staging's hypertable "
            f"{seconds(floors['staging']['seconds'])} + the ordered pass into the trading days' "
            f"{seconds(floors['trading days']['seconds'])}",
            seconds(total),
            "aspiration: 300 s",
        ),
        Row(
            1,
            "first load + full build / the sum of the floors",
            f"{r['seconds'] / total:.2f}x",
            "<= 1.5x",
            at_most(r["seconds"] / total, 1.5, "x", 2),
        ),
        Row(
            1,
            "the loader / its floor (one `\\copy` of the same rows)",
            f"{r['load']['seconds'] / floors['loader']['seconds']:.2f}x",
            "<= 1.0x",
            at_most(r["load"]["seconds"] / floors["loader"]["seconds"], 1.0, "x", 2),
        ),
    ]
    model_seconds = r["build"].get("model_seconds", {})
    for key, model in FLOOR_MODELS.items():
        if model in model_seconds:
            ratio = model_seconds[model] / floors[key]["seconds"]
            rows.append(
                Row(
                    1,
                    f"`{model}` ({seconds(model_seconds[model])}) / its floor",
                    f"{ratio:.2f}x",
                    "<= 2x",
                    at_most(ratio, 2, "x", 2),
                )
            )
    return rows


def explain_summary(e: dict[str, Any]) -> str:
    chunks = (
        "; ".join(f"{h}: {c['read']} of {c['of']} chunks" for h, c in e["chunks_read"].items())
        or "no hypertable chunks"
    )
    indexes = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in e["index_scans"].items())
    seq = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in e["seq_scans"].items())
    indexes, seq = indexes or "no index scan", seq or "none"
    return f"{chunks}; {indexes}; seq scans: {seq}; execution {e['execution_ms']} ms"


def markdown(ctx: Context, meta: dict[str, Any], failures: list[str]) -> str:
    lines = [
        f"### Incremental pipeline, {ctx.edition} edition (license `{ctx.license}`)",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
        f"{meta['finished_at']} UTC; database `{ctx.db.name}` "
        f"on {meta['server']['host']}:{meta['server']['port']} "
        f"(PostgreSQL {meta['server']['postgres']}, TimescaleDB {meta['server']['timescaledb']}); "
        f"commit {meta['commit']}; dataset `{meta['dataset']['path']}`"
        + (
            f" ({meta['dataset']['written']['files']:,} files, {meta['dataset']['written']['rows']:,} rows)"
            if "written" in meta["dataset"]
            else ""
        )
        + f"; dbt vars `{json.dumps(ctx.dbt_vars)}`"
        + (f"; `dbt build {ctx.args.dbt_build_args}`" if ctx.args.dbt_build_args else "")
        + "; "
        f"load average at the start {meta['load_average_start']:.2f}.",
        "",
        "| step | measure | figure | target | verdict |",
        "| ---: | --- | ---: | --- | --- |",
    ]
    lines += [f"| {r.step} | {r.measure} | {r.figure} | {r.target} | {r.verdict} |" for r in report_rows(ctx)]
    earlier = sorted(set(ctx.reported()) - set(ctx.steps))
    if earlier:
        lines += ["", "Steps from earlier runs on this database:"]
        lines += [
            f"- step {k}: `{ctx.previous[k]['command']}` ({ctx.previous[k].get('finished_at', '?')})"
            for k in earlier
        ]
    if failures:
        lines += ["", "**Failed:**", *[f"- {f.splitlines()[0]}" for f in failures]]
    for key, label in (("1", "first build"), ("2", "daily refresh"), ("3", "correction")):
        if key not in ctx.reported():
            continue
        build = ctx.reported()[key]["build"]
        by_type = ", ".join(f"{k} {v:,.1f} s" for k, v in sorted(build["seconds_by_type"].items()))
        lines += [
            "",
            f"`dbt build`, {label}: {build['nodes']} nodes "
            f"({', '.join(f'{k} {v}' for k, v in sorted(build['statuses'].items()))}), "
            f"wall {build['seconds']:,.1f} s; "
            f"node time by type: {by_type}",
            "",
            "| node | status | seconds |",
            "| --- | --- | ---: |",
            *[f"| {n['node']} | {n['status']} | {n['seconds']:,.1f} |" for n in build["top_nodes"]],
        ]
    explains = []
    if r := ctx.reported().get("5"):
        explains.append(("latest MAs of every symbol", r["explain"]))
    if r := ctx.reported().get("6"):
        explains += [
            (f"{name} ({r['explain_symbol']})", r[name]["explain"])
            for name in ("avg_volume_last_quarter", "monthly_all_years", "moving_averages_one_year")
        ]
    for label, e in explains:
        plan = e["plan"].splitlines()
        shown = plan[: ctx.args.plan_lines] + (
            [f"... ({len(plan) - ctx.args.plan_lines} more lines in the JSON)"]
            if len(plan) > ctx.args.plan_lines
            else []
        )
        lines += ["", f"EXPLAIN (ANALYZE, BUFFERS), {label}: {explain_summary(e)}", "", "```", *shown, "```"]
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------------------


def parse_steps(text: str) -> list[int]:
    try:
        steps = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--steps takes numbers 1-7 separated by commas, not {text!r}"
        ) from None
    if not steps or any(step not in STEPS for step in steps):
        raise argparse.ArgumentTypeError(f"--steps takes numbers 1-7 separated by commas, not {text!r}")
    return steps


def attach_database(name: str, work_dir: Path) -> Database:
    """A database kept by an earlier run (--keep), with the environment create_database gives."""
    db = Database(name=name, env=database_env(name, work_dir), work_dir=work_dir)
    try:
        db.scalar("select 1")
    except psycopg2.OperationalError as exc:
        raise SystemExit(f"cannot use database {name!r}: {exc}".strip()) from None
    return db


def earlier_runs(database: str) -> list[dict[str, Any]]:
    """The results of earlier runs on this (kept) database, oldest first."""
    runs = []
    for path in sorted(RESULTS_DIR.glob("incremental-*-2*.json")):
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if earlier.get("database") == database:
            runs.append(earlier)
    return runs


def server_meta(ctx: Context) -> dict[str, Any]:
    row = ctx.query(
        "select current_setting('server_version'), "
        "(select extversion from pg_extension where extname = 'timescaledb')",
        role="transformer",
    )[0]
    return {
        "host": ctx.db.env.get("PGHOST"),
        "port": ctx.db.env.get("PGPORT"),
        "postgres": row[0],
        "timescaledb": row[1],
    }


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_DIR, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


EDITION_LICENSES = {"community": "timescale", "apache": "apache"}
DOCS_PAGE = PROJECT_DIR / "docs" / "benchmarks.md"
DOCS_BEGIN = "<!-- bench_incremental --editions: begin -->"
DOCS_END = "<!-- bench_incremental --editions: end -->"


def parse_editions(text: str) -> list[str]:
    editions = [part.strip() for part in text.split(",") if part.strip()]
    if not editions or set(editions) - set(EDITION_LICENSES):
        raise argparse.ArgumentTypeError(f"--editions takes community and/or apache, not {text!r}")
    return editions


def without_options(argv: list[str], *names: str, flags: tuple[str, ...] = ()) -> list[str]:
    """argv without the options `names` (each with its value) and the switches `flags`."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not (arg in flags or any(arg.startswith(name + "=") for name in names)):
            kept.append(arg)
    return kept


def run_editions(args: argparse.Namespace) -> int:
    """This benchmark once per edition, each on a new cluster of its own (a free port, a state
    folder under .local/bench-clusters, WAL archiving off: bench_replicas.py measures it), made
    by scripts/db.sh and removed after; the editions' tables together in
    bench/results/incremental-editions.md, and with --write-docs in docs/benchmarks.md."""
    child_args = without_options(sys.argv[1:], "--editions", flags=("--write-docs",))
    tables, status = [], 0
    for edition in args.editions:
        cluster = Cluster.new(
            "bench-clusters",
            STOCK_ANALYTICS_TIMESCALEDB_LICENSE=EDITION_LICENSES[edition],
            STOCK_ANALYTICS_WAL_ARCHIVE="off",
        )
        try:
            log.info("=== %s edition: a cluster of its own under %s ...", edition, cluster.state_dir)
            up = cluster.run("up")
            if up.returncode != 0:
                log.error("the %s edition's cluster would not start: %s", edition, up.stderr.strip())
                status = 1
                continue
            started = time.time()
            child = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), *child_args],
                env={**cluster.env, **cluster.role_env()},
                cwd=PROJECT_DIR,
                check=False,
            )
            status = max(status, child.returncode)
            table = RESULTS_DIR / f"incremental-{edition}.md"
            if table.exists() and table.stat().st_mtime >= started:
                tables.append(table.read_text())
            else:  # an earlier run's table is not this one's
                log.error("the %s edition's run wrote no table (exit %d)", edition, child.returncode)
                status = max(status, 1)
        finally:
            cluster.destroy()
    combined = "\n".join(tables)
    (RESULTS_DIR / "incremental-editions.md").write_text(combined)
    if args.write_docs and tables:
        write_docs_section(combined)
    return status


def write_docs_section(tables: str) -> None:
    """The tables between the markers of docs/benchmarks.md, replacing the previous run's."""
    page = DOCS_PAGE.read_text()
    begin, end = page.find(DOCS_BEGIN), page.find(DOCS_END)
    if begin < 0 or end < begin:
        raise SystemExit(f"{DOCS_PAGE}: the markers {DOCS_BEGIN} ... {DOCS_END} are missing")
    body = tables.replace("### Incremental pipeline", "#### Incremental pipeline")
    DOCS_PAGE.write_text(page[: begin + len(DOCS_BEGIN)] + "\n" + body + page[end:])
    log.info("wrote the tables into %s", DOCS_PAGE.relative_to(PROJECT_DIR))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="dataset folder (default: %(default)s)"
    )
    parser.add_argument("--grown", type=Path, help="the daily refresh's folder (default: DATA-plus-one-day)")
    parser.add_argument("--steps", type=parse_steps, default=list(STEPS), help="e.g. 1,2,3 (default: all)")
    parser.add_argument("--database", help="run in this existing database (kept) instead of a fresh one")
    parser.add_argument(
        "--keep", action="store_true", help="keep the fresh database for later --database runs"
    )
    parser.add_argument(
        "--dbt-vars",
        default="auto",
        help="YAML for dbt's --vars; auto: {use_continuous_aggregates: true} on the community edition, "
        "none on apache (default: %(default)s)",
    )
    parser.add_argument(
        "--dbt-build-args",
        default="",
        help='more arguments for every `dbt build`, e.g. "--exclude stg_prices_ohlc_consistent" '
        "(recorded with the results)",
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="loader workers")
    parser.add_argument("--correct-symbol", help="step 3's symbol (default: the longest history)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="step 4: runs of each query, best kept (default: 1)"
    )
    parser.add_argument(
        "--ma-symbols",
        type=int,
        default=0,
        help="step 4 on the first N symbols only (all three on the same rows; default: every row)",
    )
    parser.add_argument("--latest-runs", type=int, default=5, help="step 5: runs (default: %(default)s)")
    parser.add_argument(
        "--runs", type=int, default=60, help="step 6: measured runs per query (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="step 6: unmeasured runs first (default: %(default)s)"
    )
    parser.add_argument(
        "--symbols", type=int, default=20, help="step 6: symbols drawn (default: %(default)s)"
    )
    parser.add_argument(
        "--api-requests", type=int, default=4000, help="step 7: requests (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--top-nodes", type=int, default=12, help="slowest dbt nodes reported (default: %(default)s)"
    )
    parser.add_argument(
        "--plan-lines", type=int, default=40, help="EXPLAIN lines in the markdown (default: %(default)s)"
    )
    parser.add_argument(
        "--floors",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="step 1: measure the build's floors after it (default: on)",
    )
    parser.add_argument(
        "--full-refresh-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="steps 2 and 3: compare every mart with a `dbt build --full-refresh` after them (default: on)",
    )
    parser.add_argument(
        "--editions",
        type=parse_editions,
        help="community,apache: every selected step once per edition, each on a new cluster of its own "
        "(default: on the server PG* points at)",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="with --editions: put the tables into docs/benchmarks.md, replacing the previous run's",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every line of the loader and dbt")
    args = parser.parse_args()
    args.data = args.data.resolve()
    args.grown = (args.grown or args.data.with_name(args.data.name + "-plus-one-day")).resolve()
    if 1 in args.steps and not args.data.exists():
        parser.error(f"no dataset at {args.data}: python bench/generate_dataset.py --out {args.data} ...")
    if 2 in args.steps and not args.grown.exists() and not args.data.exists():
        parser.error(f"no dataset at {args.grown} nor {args.data} to grow it from")
    if args.runs < 50:
        log.warning("--runs %d: the issue asks for a p95 over at least 50 runs", args.runs)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.editions:
        if args.database or args.keep:
            parser.error("--editions runs on new clusters, removed after: --database and --keep do not apply")
        return run_editions(args)
    if args.write_docs:
        parser.error("--write-docs goes with --editions (the tables of both editions in one run)")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    started_at = datetime.now(UTC)
    load_average = os.getloadavg()[0]
    if args.database:
        db = attach_database(args.database, WORK_DIR / args.database)
    else:
        db = create_database(WORK_DIR / stamp, prefix="stock_analytics_bench_incr")
    log.info(
        "database %s on %s:%s, work folder %s",
        db.name,
        db.env.get("PGHOST"),
        db.env.get("PGPORT"),
        db.work_dir,
    )
    license_ = db.scalar("select current_setting('timescaledb.license', true)") or "none"
    if args.dbt_vars == "auto":
        dbt_vars = {"use_continuous_aggregates": True} if license_ == "timescale" else {}
    else:
        dbt_vars = yaml.safe_load(args.dbt_vars) or {}
        if not isinstance(dbt_vars, dict):
            parser.error("--dbt-vars must be a YAML mapping, e.g. '{use_continuous_aggregates: true}'")
    earlier = earlier_runs(db.name) if args.database else []
    previous = {
        step: figures | {"command": run["command"]}
        for run in earlier
        for step, figures in run.get("steps", {}).items()
    }
    ctx = Context(db, args, license_, dbt_vars, previous)
    failures: list[str] = []
    try:
        for role in ("loader", "transformer", "reader"):
            ctx.conn(role)  # wrong credentials (another cluster's state folder?) fail here, early
        meta = {
            "command": "python bench/bench_incremental.py " + shlex.join(sys.argv[1:]),
            "started_at": started_at.isoformat(timespec="seconds"),
            "server": server_meta(ctx),
            "commit": git_commit(),
            # The data a kept database holds is what the run that loaded it said.
            "dataset": dataset_info(args.data)
            if {1, 2} & set(args.steps) or not earlier
            else earlier[-1]["dataset"],
            "load_average_start": load_average,
        }
        log.info(
            "edition %s (license %s), dbt vars %s, steps %s", ctx.edition, license_, dbt_vars, args.steps
        )
        for n, step in enumerate(args.steps, 1):
            log.info("=== step %d (%d/%d): %s", step, n, len(args.steps), STEP_NAMES[step])
            try:
                ctx.steps[str(step)] = STEPS[step](ctx) | {
                    "load_average_after": os.getloadavg()[0],
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            except (StepFailed, psycopg2.Error, OSError, ValueError, KeyError) as exc:
                # A failed check says why; anything else gets its traceback. Later steps build on
                # this one's state, so the run stops here (the figures so far are still written).
                if isinstance(exc, StepFailed):
                    log.error("step %d failed: %s", step, exc)
                else:
                    log.exception("step %d failed", step)
                failures.append(f"step {step} ({STEP_NAMES[step]}): {exc}")
                break
    finally:
        ctx.close()
        if args.database or args.keep:
            log.info("kept database %s: rerun steps with --database %s", db.name, db.name)
        else:
            drop_database(db)
            log.info("dropped database %s", db.name)

    meta["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    result = {
        **meta,
        "edition": ctx.edition,
        "license": license_,
        "database": db.name,
        "kept": bool(args.database or args.keep),
        "dbt_vars": dbt_vars,
        "dbt_build_args": args.dbt_build_args,
        "steps_selected": args.steps,
        "steps": ctx.steps,
        "failures": failures,
        "rows": [r.__dict__ for r in report_rows(ctx)],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2, default=str) + "\n"
    stamped = RESULTS_DIR / f"incremental-{ctx.edition}-{stamp}.json"
    stamped.write_text(text)
    (RESULTS_DIR / f"incremental-{ctx.edition}.json").write_text(text)
    report = markdown(ctx, meta, failures)
    (RESULTS_DIR / f"incremental-{ctx.edition}.md").write_text(report)
    print(report)
    print(f"figures: {stamped.relative_to(PROJECT_DIR)}, table: bench/results/incremental-{ctx.edition}.md")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
