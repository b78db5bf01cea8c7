"""Moving-average benchmark: the project's running-sum view against avg() over a window frame,
side by side on the same staging hypertable, for every symbol and for one symbol.

    python bench/bench_moving_averages.py                      # 2 M synthetic rows, 600 symbols
    python bench/bench_moving_averages.py --files 60 --rows 200000

Loads a generated dataset with the loader, builds staging and the moving-average models with
dbt in a database of its own, then times each query (best of --repeat) and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.generate_dataset import Spec, generate
from devtools.databases import Database, create_database, drop_database

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent

WINDOWS = (20, 30, 200)


def frame_average_sql(cast: str, where: str) -> str:
    """The textbook form: avg() over a ROWS frame per window, null until the frame is full."""
    columns = ",\n".join(
        f"case when row_number() over w >= {n} then avg(close{cast}) over (w rows between {n - 1} preceding "
        f"and current row) end as sma_{n}"
        for n in WINDOWS
    )
    return (
        f"select symbol, trade_date, close,\n{columns}\nfrom staging.stg_market_data__daily_prices "
        f"where close is not null {where} window w as (partition by symbol order by trade_date)"
    )


def running_sum_sql(where: str) -> str:
    return f"select * from marts.fct_daily_moving_averages where true {where}"


def timed(db: Database, sql: str, repeat: int) -> float:
    """Best wall time of the query, its rows aggregated so every value is computed."""
    wrapped = f"select count(*), {', '.join(f'sum(sma_{n})' for n in WINDOWS)} from ({sql}) q"
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        db.query(wrapped)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=600)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    data = BENCH_DIR / "data" / f"{args.files}x{args.rows}"
    written = generate(data, Spec(args.files, args.rows, seed=42, defect_share=0.001, malformed_share=0.0))
    print(f"dataset: {written['files']:,} files, {written['rows']:,} rows", flush=True)
    db = create_database(BENCH_DIR / "results" / "ma_db", prefix="stock_analytics_bench")
    try:
        load = db.run_loader(data)
        assert load.returncode in (0, 2), load.stderr
        build = db.dbt("run", "--select", "+fct_daily_moving_averages")
        assert build.returncode == 0, build.stdout[-3000:]
        symbol = db.scalar(
            "select symbol from staging.stg_market_data__daily_prices "
            "group by symbol order by count(*) desc limit 1"
        )
        one = f"and symbol = '{symbol}'"
        rows = db.scalar("select count(*) from marts.fct_daily_moving_averages")
        one_rows = db.scalar(
            f"select count(*) from marts.fct_daily_moving_averages where symbol = '{symbol}'"
        )
        cases = [
            ("running-sum view (fct_daily_moving_averages)", running_sum_sql("")),
            ("avg(float8) over rows frame", frame_average_sql("", "")),
            ("avg(numeric) over rows frame", frame_average_sql("::numeric", "")),
            (f"running-sum view, one symbol ({symbol})", running_sum_sql(one)),
            (f"avg(float8) over rows frame, one symbol ({symbol})", frame_average_sql("", one)),
        ]
        results = []
        for name, sql in cases:
            print(f"timing: {name} ...", flush=True)
            results.append((name, timed(db, sql, args.repeat)))
    finally:
        drop_database(db)

    base_all, base_one = results[0][1], results[3][1]
    print(
        f"\n{'query (every value of sma_20, sma_30, sma_200)':<52} {'rows':>10} {'seconds':>9} {'vs view':>8}"
    )
    for name, seconds in results:
        n = one_rows if "one symbol" in name else rows
        base = base_one if "one symbol" in name else base_all
        print(f"{name:<52} {n:>10,} {seconds:>9.3f} {seconds / base:>7.1f}x")
    out = BENCH_DIR / "results" / f"moving-averages-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "results": results}, indent=2) + "\n")
    print(f"\nfigures written to {out.relative_to(PROJECT_DIR)}")


if __name__ == "__main__":
    main()
