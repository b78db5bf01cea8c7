"""Print what `make demo` did: rows loaded, models built, tests passed or warned, what next."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import psycopg2
import psycopg2.extensions

from warehouse_connection.connect import connect as connect_to_warehouse

MART_TABLES = (
    "marts.fct_daily_prices",
    "marts.fct_price_averages_weekly",
    "marts.fct_price_averages_monthly",
    "marts.fct_price_averages_quarterly",
    "marts.fct_price_averages_yearly",
    "marts.fct_daily_moving_averages",
    "marts.dim_symbols",
)


def held_back(cur: psycopg2.extensions.cursor) -> list[tuple[str, str]]:
    """The symbols the price guard holds back (symbol, reason), from the failing rows of the
    dbt test that reports them; none when that test passed."""
    cur.execute("select to_regclass('audit.assert_no_held_back_prices') is not null")
    if not cur.fetchone()[0]:
        return []
    cur.execute(
        "select symbol, min(reason) from audit.assert_no_held_back_prices group by symbol order by symbol"
    )
    return cur.fetchall()


def main(load_summary_path: str, run_results_path: str) -> int:
    load = json.loads(Path(load_summary_path).read_text())
    results = json.loads(Path(run_results_path).read_text())["results"]
    kinds: Counter[tuple[str, str]] = Counter()
    warned, failed = [], []
    for result in results:
        kinds[(result["unique_id"].split(".")[0], result["status"])] += 1
        if result["status"] == "warn":
            warned.append((result["unique_id"].split(".")[2], result["failures"]))
        elif result["status"] == "fail" and result["unique_id"].startswith("test."):
            failed.append((result["unique_id"].split(".")[2], result["failures"]))
    models = sum(n for (kind, _), n in kinds.items() if kind in {"model", "seed"})
    tests = {status: n for (kind, status), n in kinds.items() if kind == "test"}

    with connect_to_warehouse("stock_analytics demo") as conn, conn.cursor() as cur:
        counts = []
        for table in MART_TABLES:
            cur.execute(f"select count(*) from {table}")
            counts.append((table, cur.fetchone()[0]))
        cur.execute("select current_database(), current_setting('port')")
        database, port = cur.fetchone()
        held = held_back(cur) if any(name == "assert_no_held_back_prices" for name, _ in failed) else []

    print("\n=== stock_analytics demo: done ===")
    print(
        f"loader : {load['files_seen']} files: {load['files_loaded']} loaded, "
        f"{load['files_unchanged']} unchanged, {load['files_rejected']} rejected; "
        f"{load['rows_loaded']:,} rows loaded, {load['rows_rejected']:,} rejected"
    )
    print(
        f"dbt    : {models} models and seeds built; tests: {tests.get('pass', 0)} passed, "
        f"{tests.get('warn', 0)} warned, {tests.get('fail', 0) + tests.get('error', 0)} failed"
    )
    for label, tests in (("FAILED", failed), ("warned", warned)):
        for name, failures in sorted(tests):
            print(f"  {label}: {name:<36} {failures:>6,} rows in audit.{name}")
    for symbol, reason in held:
        print(f"  held back: {symbol}: {reason}")
    if held:
        print("  (accept them if they are right: dbt build --vars '{accept_held_prices: [SYMBOL, ...]}')")
    if warned:
        print("  (what each warning means and why it is not an error: docs/data_quality.md)")
    print("marts  :")
    for table, count in counts:
        print(f"  {table:<38} {count:>9,} rows")
    print("\nnext:")
    print('  eval "$(make -s env ROLE=reader)"   # read the marts as the read-only role, e.g.:')
    print(
        '  psql -c "select * from marts.fct_price_averages_monthly '
        "where symbol = 'AAPL' order by period_start desc limit 5\""
    )
    print(f"  make psql               # psql on {database} (port {port})")
    print("  make docs               # lineage and column docs on http://localhost:8080")
    print("  make api                # the HTTP API on http://localhost:8000/docs")
    print("  make report             # the HTML report (make demo writes it below)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
