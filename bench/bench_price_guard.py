"""The price guard's false alarms on real universes, measured with the real code.

For each real universe and each hold-out K: every file without its last K bars is loaded and
built (the accepted history), then the whole files are loaded and built (K real sessions
appended: a daily refresh for K = 1, a catch-up after a month for K = 20). Every bar appended
is real, so every symbol the guard holds back is a false alarm, unless its new bars are in
fact a broken feed (the table lists each held symbol with the reason, to be read).

    python bench/bench_price_guard.py                           # the sample and ../shared's universe
    python bench/bench_price_guard.py --universe DIR --holdout 1,20
    python bench/bench_price_guard.py --generated 0.1,1,10,50 --files 300 --rows 900000

--generated X,...: the generator's real-world defects at X times their rates
(bench/generate_dataset.py --defect-scale X): a first build, a daily refresh at the same X (one
more session in every file), then 15 more sessions in which 5 symbols whose history has no
zero volume read volume 0 (--flood 5:15): the refresh must stay green with nothing held, the
flood must hold back exactly the flooded symbols.

Each run uses throwaway databases on the test server (as `make test` does). Writes the figures
to bench/results/price-guard-<time>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devtools.databases import Database, create_database, drop_database
from devtools.project import SAMPLE_DIR

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

GENERATOR = BENCH_DIR / "generate_dataset.py"

log = logging.getLogger("bench_price_guard")
REAL_UNIVERSE = PROJECT_DIR.parent / "shared" / "data" / "real_universe_2023"
HELD = "staging.stg_market_data__held_prices"


def price_files(root: Path) -> list[Path]:
    return sorted([*root.glob("stocks/*.csv*"), *root.glob("etfs/*.csv*")])


def truncated_copy(source: Path, target: Path, holdout: int) -> None:
    """The universe with every price file's last `holdout` data lines cut off (the metadata as
    it is); a file left with no data line keeps its header."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for path in price_files(target):
        gz = path.suffix == ".gz"
        with gzip.open(path, "rt", newline="") if gz else path.open(newline="") as fh:
            text = fh.read()
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        kept = rows[: max(1, len(rows) - holdout)]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(kept)
        data = buffer.getvalue().encode()
        path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def load_and_build(db: Database, folder: Path) -> tuple[int, float]:
    started = time.perf_counter()
    load = db.run_loader(folder, timeout=3600)
    if load.returncode not in (0, 2):
        raise RuntimeError(f"loader failed on {folder}: {load.stderr[-2000:]}")
    build = db.dbt("build", timeout=3600)
    return build.returncode, time.perf_counter() - started


def measure(universe: Path, holdout: int, work: Path) -> dict[str, Any]:
    history = work / f"history-{holdout}"
    truncated_copy(universe, history, holdout)
    db = create_database(work / f"db-{holdout}")
    try:
        first_code, first_seconds = load_and_build(db, history)
        symbols = db.scalar("select count(distinct symbol) from staging.stg_market_data__daily_prices")
        before = db.scalar("select count(*) from staging.stg_market_data__daily_prices")
        refresh_code, refresh_seconds = load_and_build(db, universe)
        appended = db.scalar("select count(*) from staging.stg_market_data__daily_prices") - before
        held = db.query(
            f"select symbol, min(first_date)::text, max(last_date)::text, string_agg(reason, '; ') "
            f"from {HELD} where accepted_at is null group by symbol order by symbol"
        )
        zero_volume = db.scalar(
            "select round(100.0 * count(*) filter (where volume = 0) / count(*), 2) "
            "from staging.stg_market_data__daily_prices"
        )
        return {
            "universe": str(universe),
            "holdout": holdout,
            "symbols": symbols,
            "zero_volume_pct": float(zero_volume),
            "first_build": {"returncode": first_code, "seconds": round(first_seconds, 1)},
            "refresh": {"returncode": refresh_code, "seconds": round(refresh_seconds, 1), "bars": appended},
            "held": [{"symbol": s, "from": a, "to": b, "reason": r} for s, a, b, r in held],
        }
    finally:
        drop_database(db)


def generate(out: Path, scale: float, files: int, rows: int, *, extra: int, flood: str | None = None) -> Path:
    if not out.exists():
        command = [
            sys.executable,
            str(GENERATOR),
            "--out",
            str(out),
            "--files",
            str(files),
            "--rows",
            str(rows),
        ]
        command += ["--real-world-defects", "--defect-scale", str(scale), "--extra-sessions", str(extra)]
        command += ["--flood", flood] if flood else []
        subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def measure_generated(scale: float, files: int, rows: int, work: Path) -> dict[str, Any]:
    """First build at X, a daily refresh at X, then a flood on top of X."""
    base = work / f"x{scale}"
    history = generate(base / "history", scale, files, rows, extra=0)
    refresh = generate(base / "refresh", scale, files, rows, extra=1)
    flooded_dir = generate(base / "flood", scale, files, rows, extra=16, flood="5:15")
    flooded = set(json.loads((flooded_dir / "flooded_symbols.json").read_text())["symbols"])
    db = create_database(base / "db")
    try:
        first_code, first_seconds = load_and_build(db, history)
        refresh_code, refresh_seconds = load_and_build(db, refresh)
        held_after_refresh = [s for (s,) in db.query(f"select distinct symbol from {HELD} order by 1")]
        flood_code, flood_seconds = load_and_build(db, flooded_dir)
        held = {s for (s,) in db.query(f"select distinct symbol from {HELD} where accepted_at is null")}
        zero_volume = db.scalar(
            "select round(100.0 * count(*) filter (where volume = 0) / count(*), 3) "
            "from staging.stg_market_data__daily_prices"
        )
        return {
            "defect_scale": scale,
            "symbols": db.scalar("select count(distinct symbol) from staging.stg_market_data__daily_prices"),
            "zero_volume_pct": float(zero_volume),
            "first_build": {"returncode": first_code, "seconds": round(first_seconds, 1)},
            "refresh": {
                "returncode": refresh_code,
                "seconds": round(refresh_seconds, 1),
                "held": held_after_refresh,
            },
            "flood": {
                "returncode": flood_code,
                "seconds": round(flood_seconds, 1),
                "flooded": sorted(flooded),
                "held": sorted(held),
                "held_exactly_the_flooded": held == flooded,
            },
        }
    finally:
        drop_database(db)


def generated_markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| defect scale X | symbols | zero-volume bars | first build | daily refresh at X "
        "| flood on top: held |",
        "| ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in results:
        flood = r["flood"]
        lines.append(
            f"| {r['defect_scale']} | {r['symbols']:,} | {r['zero_volume_pct']}% "
            f"| {'green' if r['first_build']['returncode'] == 0 else 'RED'} "
            f"| {'green' if r['refresh']['returncode'] == 0 else 'RED'}, {len(r['refresh']['held'])} held "
            f"| {len(flood['held'])} of {len(flood['flooded'])} flooded"
            + (
                ", exactly them"
                if flood["held_exactly_the_flooded"]
                else f", NOT exactly them: {flood['held']}"
            )
            + (", build red |" if flood["returncode"] != 0 else ", build GREEN |")
        )
    return "\n".join(lines)


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| universe | symbols | zero-volume bars | hold-out K | first build | bars appended | refresh "
        "| held back |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {Path(r['universe']).name} | {r['symbols']:,} | {r['zero_volume_pct']}% | {r['holdout']} "
            f"| {'green' if r['first_build']['returncode'] == 0 else 'RED'} "
            f"({r['first_build']['seconds']} s) "
            f"| {r['refresh']['bars']:,} | {'green' if r['refresh']['returncode'] == 0 else 'red'} "
            f"({r['refresh']['seconds']} s) | {len(r['held'])} |"
        )
    for r in results:
        for held in r["held"]:
            lines.append(
                f"\n- {Path(r['universe']).name}, K = {r['holdout']}: {held['symbol']} "
                f"{held['from']} to {held['to']}: {held['reason']}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", type=Path, action="append", help="a real universe folder (repeatable)")
    parser.add_argument(
        "--holdout", default="1,20", help="sessions held out and appended (default: %(default)s)"
    )
    parser.add_argument("--generated", help="defect scales X for the generator's run, e.g. 0.1,1,10,50")
    parser.add_argument("--files", type=int, default=300, help="generated files (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=900_000, help="generated rows (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=BENCH_DIR / "data" / "price_guard")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = BENCH_DIR / "results" / f"price-guard-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.generated:
        generated = []
        for scale in (float(x) for x in args.generated.split(",")):
            log.info("generated, defect scale %g ...", scale)
            generated.append(measure_generated(scale, args.files, args.rows, args.work / "generated"))
            log.info("  %s", generated[-1]["flood"])
        out.write_text(json.dumps(generated, indent=2))
        print(generated_markdown(generated))
        print(f"\n(figures: {out})")
        return 0
    universes = args.universe or [SAMPLE_DIR, *([REAL_UNIVERSE] if REAL_UNIVERSE.is_dir() else [])]
    results = []
    for universe in universes:
        for holdout in (int(k) for k in args.holdout.split(",")):
            log.info("%s, hold-out %d ...", universe, holdout)
            results.append(measure(universe, holdout, args.work / universe.name))
            log.info("  held back: %d", len(results[-1]["held"]))
    out.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"\n(figures: {out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
