"""Staging parse benchmark: the base model's whole query (join, every column parsed, the
rejection reasons) before and after the cheap path for clean rows (issue 9 item 7), side by
side in one run, on the same raw rows, in a database of its own; then proof that both give
the same rows (EXCEPT ALL both ways, every column).

    python bench/bench_parse.py                            # 400 files, about 2.2 M rows
    python bench/bench_parse.py --before 9bd96ba --repeat 3

"before" is the model and macros as of a git revision (default: the last commit before the
cheap path), compiled from a `git archive` of it; "after" is the working tree. Each version
runs as `select count(col) for every column from (<compiled model>)`, in two settings: the
server's defaults (parallel workers, JIT), and serial without JIT (how an INSERT ... SELECT,
which PostgreSQL 15 never parallelizes, runs on a server with JIT off). Prints a table and
the ratios (machines are noisy: read the ratios) and writes bench/results/parse-<time>.json.
Exit code 1 when the two versions' rows differ. Needs the PG* variables (make bench sets them).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bench.generate_dataset import REAL_WORLD_RATES, Spec, generate
from devtools.databases import Database, create_database, drop_database
from devtools.project import DBT

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

log = logging.getLogger("bench_parse")
MODEL = "base_market_data__daily_prices"
COMPILED = Path("models/staging/market_data/base") / f"{MODEL}.sql"
BEFORE_REV = "9bd96ba"  # the last commit whose base model spooled a materialized parse
TEXTS = ["date_text", "open_text", "high_text", "low_text", "close_text", "adj_close_text", "volume_text"]
VALUES = ["trade_date", "open", "high", "low", "close", "adj_close", "volume"]
KEYS = ["load_id", "line_number", "symbol", "folder_asset_type", "loaded_at"]
COLUMNS = [*KEYS, *VALUES, *TEXTS, "rejection_reason"]
SETTINGS = {
    "server defaults": "",
    "serial, no JIT": "set max_parallel_workers_per_gather = 0; set jit = off;",
}


@dataclass
class Timing:
    version: str
    setting: str
    seconds: float


def compile_model(project: Path, db: Database, target: Path) -> str:
    """The base model's SQL as dbt compiles it from `project`, against this database."""
    env = {**db.role_env("transformer"), "DBT_TARGET_PATH": str(target), "DBT_PROFILES_DIR": str(PROJECT_DIR)}
    proc = subprocess.run(
        [str(DBT), "compile", "--quiet", "-s", MODEL],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"dbt compile failed in {project}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return (target / "compiled" / "stock_analytics" / COMPILED).read_text()


def project_at(rev: str, into: Path) -> Path:
    """The project's files as of a git revision (read-only: git archive)."""
    archive = subprocess.run(["git", "archive", rev], cwd=PROJECT_DIR, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def count_query(model_sql: str) -> str:
    """Every output column evaluated (count(col) reads each), one row out."""
    counts = ", ".join(f"count({column})" for column in COLUMNS)
    return f"select count(*), {counts} from ({model_sql}) as parsed"


def timed(db: Database, setting: str, sql: str) -> tuple[float, tuple]:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            if SETTINGS[setting]:
                cur.execute(SETTINGS[setting])
            started = time.perf_counter()
            cur.execute(sql)
            row = cur.fetchone()
            return time.perf_counter() - started, row
    finally:
        conn.close()


def differing_rows(db: Database, first: str, second: str) -> int:
    return db.scalar(f"select count(*) from (({first}) except all ({second})) as missing")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--before", default=BEFORE_REV, help="git revision of the 'before' model")
    parser.add_argument("--repeat", type=int, default=1, help="alternate the versions this many times")
    parser.add_argument("--no-check", action="store_true", help="skip the EXCEPT ALL equality check")
    args = parser.parse_args()

    data = BENCH_DIR / "data" / f"{args.files}x{args.rows}-real-world"
    log.info("dataset: %s (real-world defect rates; generated once, then reused)", data)
    spec = Spec(args.files, args.rows, seed=42, defect_share=0.0, malformed_share=0.0, **REAL_WORLD_RATES)
    written = generate(data, spec)

    db = create_database(BENCH_DIR / "results" / "parse_db", prefix="stock_analytics_bench_parse")
    try:
        load = db.run_loader(data, timeout=3600)
        if load.returncode not in (0, 2):
            raise SystemExit(f"loader failed:\n{load.stderr[-3000:]}")
        rows = db.scalar("select count(*) from raw.daily_prices")
        log.info("loaded %s raw rows", f"{rows:,}")
        with tempfile.TemporaryDirectory(prefix="bench_parse_") as tmp:
            versions = {
                "before": compile_model(project_at(args.before, Path(tmp)), db, Path(tmp) / "target"),
                "after": compile_model(PROJECT_DIR, db, BENCH_DIR / "results" / "parse_db" / "target"),
            }
        timings: list[Timing] = []
        results: dict[str, tuple] = {}
        runs = [(s, v) for _ in range(args.repeat) for s in SETTINGS for v in versions]
        for setting, version in tqdm(runs, desc="parse runs", unit="run"):
            seconds, result = timed(db, setting, count_query(versions[version]))
            timings.append(Timing(version, setting, seconds))
            results[version] = result
        same_counts = results["before"] == results["after"]
        differences = None
        if not args.no_check:
            log.info("checking equality: EXCEPT ALL both ways, every column ...")
            differences = {
                "before except all after": differing_rows(db, versions["before"], versions["after"]),
                "after except all before": differing_rows(db, versions["after"], versions["before"]),
            }
    finally:
        drop_database(db)

    print(f"\n{rows:,} raw rows ({written['files']:,} files, real-world defect rates)")
    print(
        f"{'setting':<18} {'before (s)':>11} {'after (s)':>10} {'us/row before':>14} "
        f"{'us/row after':>13} {'speed-up':>9}"
    )
    summary = {}
    for setting in SETTINGS:
        best = {
            version: min(t.seconds for t in timings if (t.setting, t.version) == (setting, version))
            for version in versions
        }
        ratio = best["before"] / best["after"]
        summary[setting] = best | {"ratio": ratio}
        print(
            f"{setting:<18} {best['before']:>11.1f} {best['after']:>10.1f} "
            f"{best['before'] / rows * 1e6:>14.2f} {best['after'] / rows * 1e6:>13.2f} {ratio:>8.2f}x"
        )
    print(f"(best of {args.repeat} per cell; before = {args.before}, after = working tree)")
    print(f"per-column counts equal: {same_counts}")
    if differences is not None:
        for name, count in differences.items():
            print(f"{name}: {count} rows")
    out = BENCH_DIR / "results" / f"parse-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "raw_rows": rows,
                "timings": [t.__dict__ for t in timings],
                "best": summary,
                "differences": differences,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"figures written to {out.relative_to(PROJECT_DIR)}")
    return 0 if same_counts and not any((differences or {}).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
