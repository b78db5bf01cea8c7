"""The Kafka feed's kill test, many times: two consumers of the group on a three-node cluster,
each killed -9 at seeded random moments over three rounds, then restarted; each run must end
with every offset taken once and the warehouse equal to a file load of the same bars.

    eval "$(make -s env)"
    python bench/bench_stream_kills.py                  # 10 runs (seeds 1..10), ~25 min on 2 cores
    python bench/bench_stream_kills.py --runs 3 --first-seed 100

It runs the suite's own test (tests/test_stream_kafka.py, the one `make test` runs with two
seeds) once per seed in one pytest session, so the sample's file load it compares with is built
once. Writes bench/results/stream_kills_<timestamp>.json and prints one row per seed (passed or
failed, seconds). Exit code 0 when every run passed, 1 when one failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.etree import ElementTree

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
TEST = (
    "tests/test_stream_kafka.py::"
    "test_two_consumers_killed_at_random_points_on_a_three_node_cluster_equal_a_file_load"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="seeded runs (default 10)")
    parser.add_argument("--first-seed", type=int, default=1, help="the runs' seeds count from it (default 1)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    return args


def run(seeds: list[int]) -> list[dict[str, object]]:
    """One pytest session over the seeds; per seed its outcome and seconds (pytest's junit XML)."""
    with tempfile.TemporaryDirectory(prefix="bench-kills-") as tmp:
        report = Path(tmp) / "report.xml"
        env = os.environ | {"STOCK_ANALYTICS_KILL_SEEDS": ",".join(str(seed) for seed in seeds)}
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", TEST],
            cwd=PROJECT_DIR,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if not report.exists():
            raise SystemExit("pytest wrote no report: see its output above")
        cases = ElementTree.parse(report).getroot().iter("testcase")
        results = []
        for case in cases:
            seed = int(case.get("name", "").rpartition("[")[2].rstrip("]"))
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            results.append(
                {
                    "seed": seed,
                    "passed": failure is None and case.find("skipped") is None,
                    "seconds": round(float(case.get("time", "0")), 1),
                    "failure": None if failure is None else (failure.get("message") or "")[:2000],
                }
            )
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = list(range(args.first_seed, args.first_seed + args.runs))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    results = run(seeds)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"stream_kills_{stamp}.json"
    path.write_text(json.dumps({"started": stamp, "test": TEST, "runs": results}, indent=2) + "\n")
    print("| seed | result | seconds |\n| ---: | --- | ---: |")
    for result in results:
        print(f"| {result['seed']} | {'passed' if result['passed'] else 'FAILED'} | {result['seconds']} |")
    passed = sum(bool(result["passed"]) for result in results)
    print(f"\n{passed} of {len(seeds)} runs passed; results: {path.relative_to(PROJECT_DIR)}")
    return 0 if passed == len(seeds) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
