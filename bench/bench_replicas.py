"""Replicas and the WAL archive, measured: replication lag through a first build and a daily
refresh, the API with and without a replica in one run, and what archiving costs.

    eval "$(make -s env)"                        # the project cluster (replicas are of it)
    python bench/bench_replicas.py --data bench/data/8000x25000000              # every step
    python bench/bench_replicas.py --data bench/data/300x2000000 --steps lag,api --keep   # then --database

Steps (--steps picks any of them):
  lag      in a new database on the project cluster, with replica --replica running (made if
           missing): bench_incremental.py's first load + full build, then its daily refresh
           (DATA-plus-one-day), while `scripts/replica.sh status` is read every
           --sample-interval seconds; the replica's lag (seconds, bytes) p50 / p95 / max per phase
  api      on that database (or --database): bench_api.py with the API on the primary alone, then
           with the replica in API_READ_SERVERS, in alternate rounds (--rounds of each, the same
           requests); p95 and requests/s of each, with the share of the cores its client, its
           workers and their PostgreSQL backends took
  archive  two new clusters of their own on free ports, the same build, one with WAL archiving
           and one with STOCK_ANALYTICS_WAL_ARCHIVE=off: bench_incremental.py's first load +
           build and daily refresh in each, one after the other; the time of each, the WAL each
           wrote, and the archive's size after each phase, every written WAL file archived first
           (a switch to the next file, waited for): the archive per daily refresh

Writes bench/results/replicas-<UTC time>.json and prints a summary. Exit code 0 when every step
ran, 1 when one failed (the message says which), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.settings import Settings
from devtools.clusters import Cluster
from devtools.project import PROJECT_DIR
from devtools.stats import percentile
from warehouse_connection import db_script_env, parse_exports

RESULTS_DIR = PROJECT_DIR / "bench" / "results"
SCRIPTS = PROJECT_DIR / "scripts"
STEPS = ("lag", "api", "archive")
API_LAG_BOUND = Settings.max_replica_lag  # the API's default API_MAX_REPLICA_LAG
STATUS_LINE = re.compile(
    r"^replica (?P<n>\d+) port \d+ state (?P<state>\S+) lag_bytes (?P<lag_bytes>\S+) lag_s (?P<lag_s>\S+)"
)
FIGURES_LINE = re.compile(r"^figures: (?P<path>\S+\.json)")
log = logging.getLogger("bench_replicas")


class StepFailed(Exception):
    """A step could not run to its end; the message says why."""


@dataclass
class LagSampler:
    """`replica.sh status` every interval in a thread: (time, phase, lag_s, lag_bytes) of one replica."""

    replica: int
    interval: float
    env: dict[str, str]
    phase: str = "idle"
    samples: list[tuple[float, str, float | None, int | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            done = project_script("replica", "status", env=self.env)
            for line in done.stdout.splitlines():
                m = STATUS_LINE.match(line)
                if m and int(m["n"]) == self.replica:
                    lag_s = None if m["lag_s"] == "-" else float(m["lag_s"])
                    lag_bytes = None if m["lag_bytes"] == "-" else int(m["lag_bytes"])
                    self.samples.append((time.monotonic(), self.phase, lag_s, lag_bytes))

    def __enter__(self) -> LagSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def summary(self, phase: str) -> dict[str, Any]:
        seconds = [s[2] for s in self.samples if s[1] == phase and s[2] is not None]
        sizes = [s[3] for s in self.samples if s[1] == phase and s[3] is not None]
        return {
            "samples": len(seconds),
            "lag_s_p50": percentile(seconds, 50),
            "lag_s_p95": percentile(seconds, 95),
            "lag_s_max": max(seconds, default=None),
            # How much of the phase the API would have read from the primary instead.
            f"readings_over_{API_LAG_BOUND:g}_s": sum(1 for lag in seconds if lag > API_LAG_BOUND),
            "lag_bytes_p50": percentile(sizes, 50),
            "lag_bytes_max": max(sizes, default=None),
        }

    def readings(self) -> list[dict[str, Any]]:
        """Every reading, seconds from the first: the lag over time, for a look at its bursts."""
        start = self.samples[0][0] if self.samples else 0.0
        return [
            {"t": round(t - start, 2), "phase": phase, "lag_s": lag_s, "lag_bytes": lag_bytes}
            for t, phase, lag_s, lag_bytes in self.samples
        ]


def run_logged(cmd: list[str], env: dict[str, str], label: str) -> list[str]:
    """A benchmark script, its output logged line by line; its lines (StepFailed when it fails)."""
    log.info("%s: %s", label, " ".join(cmd))
    lines = []
    with subprocess.Popen(
        cmd, env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            log.info("%s | %s", label, line.rstrip())
    if proc.returncode != 0:
        raise StepFailed(f"{label} exited with {proc.returncode}: {' '.join(lines[-5:])}")
    return lines


def incremental(env: dict[str, str], args: argparse.Namespace, label: str, *extra: str) -> dict[str, Any]:
    """bench_incremental.py with these arguments; its results JSON."""
    cmd = [sys.executable, str(PROJECT_DIR / "bench" / "bench_incremental.py"), "--data", str(args.data)]
    cmd += [*extra, "--dbt-build-args", args.dbt_build_args]
    lines = run_logged(cmd, env, label)
    paths = [m["path"] for line in lines if (m := FIGURES_LINE.match(line))]
    if not paths:
        raise StepFailed(f"{label}: no results file named in its output")
    return json.loads((PROJECT_DIR / paths[-1]).read_text())


def step_seconds(result: dict[str, Any], step: str) -> float:
    return float(result["steps"][step]["seconds"])


def project_script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """scripts/<name>.sh ARGS, its output captured."""
    return subprocess.run(
        ["bash", str(SCRIPTS / f"{name}.sh"), *args], env=env, capture_output=True, text=True, check=False
    )


def ensure_replica(n: int, env: dict[str, str]) -> None:
    done = project_script("replica", "up", str(n), env=env)
    if done.returncode != 0:
        raise StepFailed(f"replica {n} would not start: {done.stderr.strip()}")


def _replica_env(n: int, env: dict[str, str]) -> dict[str, str]:
    done = project_script("replica", "env", str(n), env=env)
    if done.returncode != 0:
        raise StepFailed(f"no replica {n}: {done.stderr.strip()}")
    return parse_exports(done.stdout)


def step_lag(args: argparse.Namespace, env: dict[str, str], out: dict[str, Any]) -> None:
    ensure_replica(args.replica, env)
    with LagSampler(args.replica, args.sample_interval, env) as sampler:
        sampler.phase = "first load + build"
        first = incremental(env, args, "first build", "--steps", "1", "--keep", "--no-floors")
        database = first["database"]
        sampler.phase = "daily refresh"
        daily = incremental(
            env, args, "daily refresh", "--steps", "2", "--database", database, "--no-full-refresh-check"
        )
        sampler.phase = "after"
        time.sleep(2 * args.sample_interval)
    out["database"] = database
    out["lag"] = {
        "replica": args.replica,
        "sample_interval_s": args.sample_interval,
        "first load + build": {"seconds": step_seconds(first, "1"), **sampler.summary("first load + build")},
        "daily refresh": {"seconds": step_seconds(daily, "2"), **sampler.summary("daily refresh")},
        "readings": sampler.readings(),
    }


def step_api(args: argparse.Namespace, env: dict[str, str], out: dict[str, Any]) -> None:
    database = args.database or out.get("database")
    if not database:
        raise StepFailed("the api step needs --database, or the lag step before it")
    ensure_replica(args.replica, env)
    reader = {**env, **db_script_env("env", "reader", env=env), "PGDATABASE": database}
    reader.pop("API_READ_SERVERS", None)
    with_replica = {**reader, "API_READ_SERVERS": f"localhost:{_replica_env(args.replica, env)['PGPORT']}"}
    rounds: dict[str, list[dict[str, Any]]] = {"primary only": [], "primary + replica": []}
    for round_number in range(args.rounds):
        for name, api_env in (("primary only", reader), ("primary + replica", with_replica)):
            cmd = [
                sys.executable,
                str(PROJECT_DIR / "bench" / "bench_api.py"),
                "--requests",
                str(args.requests),
            ]
            cmd += ["--concurrency", "16", "--workers", str(args.workers), "--seed", str(42 + round_number)]
            lines = run_logged(cmd, api_env, f"api, {name}, round {round_number + 1}")
            paths = [line.split()[-1] for line in lines if line.startswith("raw figures: ")]
            if not paths:
                raise StepFailed(f"api, {name}: no results file named in its output")
            rounds[name].append(json.loads((PROJECT_DIR / paths[-1]).read_text()))
    out["api"] = {
        name: {
            "p95_ms_each_round": [r["overall"]["p95_ms"] for r in results],
            "p50_ms_each_round": [r["overall"]["p50_ms"] for r in results],
            "requests_per_s_each_round": [r["requests_per_s"] for r in results],
            "errors": sum(r["overall"]["errors"] for r in results),
            "client_cpu_share": [r["client_cpu_share"] for r in results],
            "api_cpu_share": [r["api_cpu_share"] for r in results],
            "api_postgres_cpu_share": [r["api_postgres_cpu_share"] for r in results],
        }
        for name, results in rounds.items()
    }


def step_archive(args: argparse.Namespace, out: dict[str, Any]) -> None:
    figures = {}
    for archiving in ("off", "on"):
        cluster = Cluster.new(
            "bench-clusters", **({"STOCK_ANALYTICS_WAL_ARCHIVE": "off"} if archiving == "off" else {})
        )
        try:
            up = cluster.run("up")
            if up.returncode != 0:
                raise StepFailed(f"the archiving-{archiving} cluster would not start: {up.stderr.strip()}")
            env = {**cluster.env, **cluster.role_env()}
            su = db_script_env("superuser-env", env=cluster.env)
            wal = [wal_position(su)]
            first = incremental(
                env, args, f"first build, archiving {archiving}", "--steps", "1", "--keep", "--no-floors"
            )
            wal.append(wal_position(su))
            archive_after_first = archive_bytes(cluster.state_dir, su)
            wal.append(wal_position(su))  # past the switch: the daily refresh's WAL starts here
            daily = incremental(
                env,
                args,
                f"daily refresh, archiving {archiving}",
                "--steps",
                "2",
                "--database",
                first["database"],
                "--no-full-refresh-check",
            )
            wal.append(wal_position(su))
            archive_after_daily = archive_bytes(cluster.state_dir, su)
            figures[archiving] = {
                "first load + build s": step_seconds(first, "1"),
                "daily refresh s": step_seconds(daily, "2"),
                "wal bytes, first load + build": wal[1] - wal[0],
                "wal bytes, daily refresh": wal[3] - wal[2],
                "archive bytes after the first build": archive_after_first,
                "archive bytes added by the daily refresh": (
                    None if archive_after_daily is None else archive_after_daily - (archive_after_first or 0)
                ),
            }
        finally:
            if args.keep:
                cluster.run("down")
            else:
                cluster.destroy()
    figures["first build, on / off"] = (
        figures["on"]["first load + build s"] / figures["off"]["first load + build s"]
    )
    out["archive"] = figures


def superuser_value(superuser: dict[str, str], sql: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-At", "-d", "postgres", "-c", sql],
        env={**os.environ, **superuser},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def wal_position(superuser: dict[str, str]) -> int:
    return int(superuser_value(superuser, "select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8"))


def archive_bytes(state_dir: Path, superuser: dict[str, str]) -> int | None:
    """The archive's size once everything written so far is in it (a WAL switch, waited for)."""
    archive = state_dir / "wal-archive"
    if not archive.exists():
        return None
    segment = superuser_value(superuser, "select pg_walfile_name(pg_switch_wal())")
    deadline = time.monotonic() + 120
    while (
        superuser_value(superuser, "select coalesce(last_archived_wal, '') from pg_stat_archiver") < segment
    ):
        if time.monotonic() > deadline:
            raise StepFailed(f"WAL file {segment} was not archived within 120 s")
        time.sleep(0.2)
    return sum(p.stat().st_size for p in archive.iterdir() if p.is_file())


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="a generated dataset (bench/generate_dataset.py)"
    )
    parser.add_argument("--steps", default=",".join(STEPS), help="any of lag,api,archive (default: all)")
    parser.add_argument("--replica", type=int, default=1, help="the replica's number (default: 1)")
    parser.add_argument("--database", help="the api step on this built database")
    parser.add_argument("--sample-interval", type=float, default=0.5, help="seconds between lag readings")
    parser.add_argument("--requests", type=int, default=4000, help="api: requests per round (default: 4000)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="api: rounds of each configuration (default: 2)"
    )
    parser.add_argument("--workers", type=int, default=2, help="api: API worker processes (default: 2)")
    parser.add_argument(
        "--dbt-build-args", default="", help="passed to bench_incremental.py (e.g. --exclude ...)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the lag step's database and the archive step's clusters"
    )
    args = parser.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if unknown := set(steps) - set(STEPS):
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    args.data = args.data.resolve()
    if ("lag" in steps or "archive" in steps) and not args.data.exists():
        parser.error(f"no dataset at {args.data}")

    env = dict(os.environ)
    out: dict[str, Any] = {"started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "data": str(args.data)}
    out["command"] = " ".join(sys.argv)
    status = 0
    try:
        if "lag" in steps:
            step_lag(args, env, out)
        if "api" in steps:
            step_api(args, env, out)
        if "archive" in steps:
            step_archive(args, out)
    except StepFailed as exc:
        log.error("%s", exc)
        out["failed"] = str(exc)
        status = 1
    if "lag" in steps and out.get("database") and not args.keep:
        drop = subprocess.run(
            ["psql", "-X", "-q", "-d", "postgres", "-c", f'drop database "{out["database"]}" with (force)'],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if drop.returncode == 0:
            log.info("dropped database %s (--keep keeps it)", out["database"])
        else:
            log.warning("could not drop database %s: %s", out["database"], drop.stderr.strip())
    out["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"replicas-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    shown = {k: v for k, v in out.items() if k in ("lag", "api", "archive", "failed")}
    if "lag" in shown:
        shown["lag"] = {k: v for k, v in shown["lag"].items() if k != "readings"}  # in the file
    print(json.dumps(shown, indent=2))
    print(f"results: {path.relative_to(PROJECT_DIR)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
