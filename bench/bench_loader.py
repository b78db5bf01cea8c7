"""Loader benchmark: the loader against a single-stream `psql \\copy` and row-by-row INSERT,
measured side by side in one run, on the same synthetic dataset, in a database of its own;
then the daily refresh (every file one line longer: the append path) against a full reload
of the same grown files.

    python bench/bench_loader.py                                  # Kaggle scale: 8,000 files, 25 M rows
    python bench/bench_loader.py --files 500 --rows 1000000       # a quick look
    python bench/bench_loader.py --baseline-tree ../before        # also: another checkout's loader
                                                                  # beside this one, round by round

Prints a table of times and ratios (machines are noisy: read the ratios, not the seconds) and
writes the figures to bench/results/loader-<time>.json. Needs the PG* variables (make bench sets them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from bench.generate_dataset import Spec, generate
from devtools.databases import Database, create_database, drop_database

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

BASELINE_TABLE = "bench_copy_target"
TEXT_COLUMNS = "date text, open text, high text, low text, close text, adj_close text, volume text"


@dataclass
class Measure:
    name: str
    rows: int
    seconds: float
    peak_rss_mb: float | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds and peak RSS (MB) of a command and everything it waited for (its workers)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    # ru_maxrss of a reaped child covers its reaped descendants too (KiB on Linux).
    peak_mb = _child_peak_rss_kib() / 1024
    return seconds, peak_mb, subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _child_peak_rss_kib() -> float:
    import resource  # noqa: PLC0415 - POSIX only, and only here

    return float(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def psql_copy(db: Database, data: Path) -> Measure:
    """The bar: one psql \\copy stream of every price row into an unindexed all-text table."""
    db.query(f"drop table if exists {BASELINE_TABLE}; create table {BASELINE_TABLE} ({TEXT_COLUMNS})")
    program = f"cd '{data}' && tail -q -n +2 stocks/*.csv etfs/*.csv".replace("'", "''")
    seconds, _, proc = run_timed(
        [
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"\\copy {BASELINE_TABLE} from program '{program}' with (format csv)",
        ],
        db.env,
    )
    if proc.returncode:
        raise SystemExit(f"psql \\copy failed: {proc.stderr}")
    rows = db.scalar(f"select count(*) from {BASELINE_TABLE}")
    db.query(f"drop table {BASELINE_TABLE}")
    return Measure("psql \\copy, 1 stream, unindexed", rows, seconds)


def empty_raw_schema(db: Database) -> None:
    db.query(
        "set client_min_messages = warning; drop schema if exists raw cascade; "
        "create schema raw authorization loader"
    )


def grow_by_one_line(data: Path, grown: Path) -> int:
    """A copy of the dataset with every price file one trading day longer (the daily refresh).

    The new bar moves the close by up to 1% (drawn per file, deterministic): a bar repeating the
    last one would be held by the price guard as a repeated close, and the build would apply
    nothing. A last line without prices gets one without prices again.
    """
    if grown.exists():
        shutil.rmtree(grown)
    files = 0
    for path in sorted([*data.glob("stocks/*.csv"), *data.glob("etfs/*.csv")]):
        target = grown / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 200))
            last = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
        day, *values = last.split(",")
        next_day = dt.date.fromisoformat(day) + dt.timedelta(days=1)
        while next_day.weekday() >= 5:
            next_day += dt.timedelta(days=1)
        with target.open("a") as fh:
            fh.write(",".join([next_day.isoformat(), *next_bar(values, path.name)]) + "\n")
        files += 1
    return files


def next_bar(values: list[str], file_name: str) -> list[str]:
    """Open, High, Low, Close, Adj Close, Volume of the day after a bar with these values."""
    try:
        close, adj_close = float(values[3]), float(values[4])
    except (IndexError, ValueError):
        return values
    move = 1 + random.Random(zlib.crc32(file_name.encode())).uniform(-0.01, 0.01)
    new_close = close * move
    high, low = max(close, new_close) * 1.002, min(close, new_close) * 0.998
    return [repr(close), repr(high), repr(low), repr(new_close), repr(adj_close * move), *values[5:]]


def loader(
    db: Database,
    data: Path,
    workers: int,
    *,
    fresh: bool = True,
    label: str | None = None,
    tree: Path = PROJECT_DIR,
) -> Measure:
    """The loader of `tree` (a checkout of the project; its own packages first on the path)."""
    if fresh:
        empty_raw_schema(db)
    summary_path = BENCH_DIR / "results" / ".loader-summary.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    env = db.role_env("loader")
    if tree != PROJECT_DIR:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable,
        str(tree / "loader" / "copy_csv.py"),
        str(data),
        "--workers",
        str(workers),
        "--summary-json",
        str(summary_path),
    ]
    seconds, peak, proc = run_timed(cmd, env)
    if proc.returncode not in (0, 2):
        raise SystemExit(f"loader failed:\n{proc.stderr}")
    summary = json.loads(summary_path.read_text())
    if label is None:
        label = f"loader, {workers} worker{'s' if workers > 1 else ''}" + (
            "" if fresh else ", re-run (all unchanged)"
        )
    rows = summary["files_unchanged"] if "unchanged" in label else summary["rows_loaded"]
    return Measure(label, rows, seconds, peak)


def row_by_row_insert(db: Database, data: Path, limit: int, commit_each_row: bool = False) -> Measure:
    """psycopg2 execute() per row, on a subset: in one transaction (the strong form), or
    committing each row (what naive loaders do)."""
    db.query(f"drop table if exists {BASELINE_TABLE}; create table {BASELINE_TABLE} ({TEXT_COLUMNS})")
    rows: list[list[str]] = []
    for path in sorted((data / "stocks").glob("*.csv")):
        with path.open() as fh:
            next(fh)
            rows.extend(line.rstrip("\n").split(",") for line in fh)
        if len(rows) >= limit:
            break
    rows = rows[:limit]
    conn = db.connect()
    conn.autocommit = commit_each_row
    started = time.perf_counter()
    with conn.cursor() as cur:
        for row in rows:
            cur.execute(f"insert into {BASELINE_TABLE} values (%s, %s, %s, %s, %s, %s, %s)", row)
    conn.commit()
    seconds = time.perf_counter() - started
    conn.close()
    db.query(f"drop table {BASELINE_TABLE}")
    how = "commit per row" if commit_each_row else "one transaction"
    return Measure(f"row-by-row INSERT, {how}", len(rows), seconds)


def settle(db: Database) -> float:
    """Vacuum and analyze the raw tables a first load filled, as autovacuum would before the
    next day's load comes, and wait for any autovacuum worker on them; the seconds it took."""
    started = time.perf_counter()
    db.query("vacuum (analyze) raw.daily_prices, raw.load_log")
    busy = (
        "select count(*) from pg_stat_activity"
        " where backend_type = 'autovacuum worker' and datname = current_database()"
    )
    while db.scalar(busy):
        time.sleep(1.0)
    return time.perf_counter() - started


def compare_trees(
    db: Database, data: Path, grown: Path, *, workers: int, baseline_tree: Path, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Another checkout's loader beside this one, alternating, on the same files: a first load
    into an empty raw schema, then, the raw tables vacuumed (a day later, autovacuum has done
    so), the daily refresh (every file one line longer)."""
    trees = {"baseline": baseline_tree.resolve(), "this tree": PROJECT_DIR}
    figures: dict[str, dict[str, list[float]]] = {name: {"first": [], "daily": []} for name in trees}
    for i in range(rounds):
        for name, tree in trees.items():
            print(f"side by side, round {i + 1}/{rounds}: {name} ({tree}) ...", flush=True)
            figures[name]["first"].append(loader(db, data, workers, tree=tree).seconds)
            print(f"  raw vacuumed and analyzed before the next day: {settle(db):.0f} s", flush=True)
            figures[name]["daily"].append(loader(db, grown, workers, fresh=False, tree=tree).seconds)
    header = f"{'loader':<12} {'first load, s':>22} {'daily refresh, s':>22}"
    print(f"\n{header}   (each round, {workers} workers)")
    for name, tree in trees.items():
        first = ", ".join(f"{x:.1f}" for x in figures[name]["first"])
        daily = ", ".join(f"{x:.1f}" for x in figures[name]["daily"])
        print(f"{name:<12} {first:>22} {daily:>22}   {tree}")
    for step, what in (("first", "first load"), ("daily", "daily refresh")):
        ratio = statistics.median(figures["this tree"][step]) / statistics.median(figures["baseline"][step])
        print(f"{what}: this tree / baseline, medians: {ratio:.2f}x")
    return figures


def print_table(
    measures: list[Measure],
    baseline: Measure,
    loader_best: Measure,
    insert: Measure,
    insert_autocommit: Measure,
) -> None:
    """Times, and each method's rows/s against psql's; the two target ratios under the table."""
    print(
        f"\n{'method':<44} {'rows':>12} {'seconds':>9} {'rows/s':>11} {'rows/s vs psql':>15} {'peak RSS':>9}"
    )
    for m in measures:
        comparable = "re-run" not in m.name and "daily refresh" not in m.name
        speed = f"{m.rows_per_second / baseline.rows_per_second:.2f}x" if comparable else "-"
        rss = f"{m.peak_rss_mb:.0f} MB" if m.peak_rss_mb else ""
        print(
            f"{m.name:<44} {m.rows:>12,} {m.seconds:>9.1f} {m.rows_per_second:>11,.0f} {speed:>15} {rss:>9}"
        )
    time_ratio = loader_best.seconds / baseline.seconds
    speedup = loader_best.rows_per_second / insert.rows_per_second
    speedup_naive = loader_best.rows_per_second / insert_autocommit.rows_per_second
    print(
        f"\nloader time / psql \\copy time, same rows: {time_ratio:.2f}x (target <= 1.0, acceptable <= 1.25)"
    )
    print(
        f"loader rows/s / row-by-row INSERT rows/s: {speedup:.0f}x in one transaction, "
        f"{speedup_naive:.0f}x committing each row (target >= 50)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--rows", type=int, default=25_000_000)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeat", type=int, default=1, help="alternate psql and loader this many times")
    parser.add_argument("--insert-rows", type=int, default=20_000, help="subset size for row-by-row INSERT")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout of the project (a worktree of an earlier commit): after the run, its "
        "loader and this one take turns on the first load and the daily refresh, --repeat rounds",
    )
    args = parser.parse_args()

    data = BENCH_DIR / "data" / f"{args.files}x{args.rows}"
    print(f"dataset: {data} (generated once, then reused) ...", flush=True)
    written = generate(data, Spec(args.files, args.rows, seed=42, defect_share=0.001, malformed_share=0.0))
    print(f"dataset: {written['files']:,} files, {written['rows']:,} rows", flush=True)

    db = create_database(BENCH_DIR / "results" / "db", prefix="stock_analytics_bench")
    try:
        copies, loads = [], []
        for i in range(args.repeat):
            print(f"round {i + 1}/{args.repeat}: psql \\copy ...", flush=True)
            copies.append(psql_copy(db, data))
            print(f"round {i + 1}/{args.repeat}: loader ...", flush=True)
            loads.append(loader(db, data, args.workers))
        rerun = loader(db, data, args.workers, fresh=False)
        print("daily refresh: every file one line longer ...", flush=True)
        grown = BENCH_DIR / "data" / f"{args.files}x{args.rows}-plus-one-day"
        grow_by_one_line(data, grown)
        refresh = loader(db, grown, args.workers, fresh=False, label="daily refresh: loader (append)")
        appended = db.scalar("select count(*) from raw.load_log where load_mode = 'append'")
        reload = loader(db, grown, args.workers, fresh=True, label="daily refresh: full reload")
        insert = row_by_row_insert(db, data, args.insert_rows)
        insert_autocommit = row_by_row_insert(db, data, args.insert_rows // 4, commit_each_row=True)
        side_by_side = None
        if args.baseline_tree:
            side_by_side = compare_trees(
                db, data, grown, workers=args.workers, baseline_tree=args.baseline_tree, rounds=args.repeat
            )
    finally:
        drop_database(db)

    baseline = min(copies, key=lambda m: m.seconds)
    best = min(loads, key=lambda m: m.seconds)
    measures = [baseline, best, rerun, refresh, reload, insert, insert_autocommit]
    print_table(measures, baseline, best, insert, insert_autocommit)
    print(
        f"daily refresh: {refresh.rows:,} rows appended by {appended:,} append loads in "
        f"{refresh.seconds:.1f} s; a full reload of the same files {reload.seconds:.1f} s: "
        f"{reload.seconds / refresh.seconds:.1f}x faster"
    )
    if args.repeat > 1:
        medians = statistics.median(m.seconds for m in loads) / statistics.median(m.seconds for m in copies)
        print(f"(best of {args.repeat} each; the ratio of the medians is {medians:.2f}x)")
    out = BENCH_DIR / "results" / f"loader-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "dataset": written,
                "measures": [m.__dict__ | {"rows_per_second": m.rows_per_second} for m in measures],
                "side_by_side_seconds": side_by_side,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"\nfigures written to {out.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    main()
