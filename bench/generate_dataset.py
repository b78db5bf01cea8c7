"""Write a deterministic synthetic dataset in the Kaggle stock-market-dataset layout.

    python bench/generate_dataset.py --out bench/data/full                    # ~8,000 files, 25 M rows
    python bench/generate_dataset.py --out bench/data/small --files 200 --rows 500000
    python bench/generate_dataset.py --out bench/data/real --real-world-defects  # dbt's proof

Prices follow a geometric random walk per symbol on weekdays ending 2020-04-01, with realistic
OHLC shapes and volumes. A configurable share of rows carries the defects real files have:
a date and nothing else, High < Low, Open = 0 (all still valid CSV), and, with
--malformed-share, lines with a wrong field count, which the loader must reject.

--real-world-defects (or the single --*-share options) seeds instead each finding of the dbt
data-quality tests at the rate measured on real files (REAL_WORLD_RATES: unexplained jumps as
measured on 2,642 real Kaggle files, the others on the bundled 24-file sample), so that
`dbt build` at Kaggle scale meets real-world dirt; docs/data_quality.md has the numbers.
The same arguments always give byte-identical files (with the real-world shares all zero,
the files are those of earlier versions of this script).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
META_HEADER = (
    "Nasdaq Traded,Symbol,Security Name,Listing Exchange,Market Category,ETF,Round Lot Size,"
    "Test Issue,Financial Status,CQS Symbol,NASDAQ Symbol,NextShares\n"
)
LAST_DAY = dt.date(2020, 4, 1)
FIRST_DAY = dt.date(1962, 1, 2)
ETF_SHARE = 0.27  # as in the Kaggle dataset: about 2,165 ETFs of 8,049 files


# Share of rows (for stale runs: of runs started) with each finding, as measured on real data:
# unexplained jumps 1,428 in 8.7 M rows of 2,642 real Kaggle files; the rest in the bundled
# sample's 187,462 rows (docs/data_quality.md).
REAL_WORLD_RATES = {
    "jump_share": 1_428 / 8_700_000,
    "stale_share": 72 / 187_462,
    "dividend_share": 2_208 / 187_462,
    "zero_volume_share": 17 / 187_462,
    "missing_share": 1 / 187_462,
    "zero_open_share": 8_202 / 187_462,
    "empty_share": 3 / 187_462,
    "hilo_share": 1 / 187_462,
}
DEFECT_HELP = {
    "jump_share": "close x4 or /4 in a day, adj ratio unchanged (an unexplained jump)",
    "stale_share": "a run of 5 identical closes starts",
    "dividend_share": "a step in the adj_close / close ratio",
    "zero_volume_share": "volume 0",
    "missing_share": "no line for the session",
    "zero_open_share": "Open = 0",
    "empty_share": "a date and nothing else",
    "hilo_share": "High < Low",
}


@dataclass(frozen=True)
class Spec:
    files: int
    rows: int
    seed: int
    defect_share: float
    malformed_share: float
    jump_share: float = 0.0
    stale_share: float = 0.0
    dividend_share: float = 0.0
    zero_volume_share: float = 0.0
    missing_share: float = 0.0
    zero_open_share: float = 0.0
    empty_share: float = 0.0
    hilo_share: float = 0.0

    def real_world_shares(self) -> list[tuple[str, float]]:
        return [(name, getattr(self, name)) for name in REAL_WORLD_RATES if getattr(self, name) > 0]


def weekdays() -> list[str]:
    days, day = [], FIRST_DAY
    while day <= LAST_DAY:
        if day.weekday() < 5:
            days.append(day.isoformat())
        day += dt.timedelta(days=1)
    return days


def symbol_name(index: int) -> str:
    letters = ""
    index += 26 * 26 * 26  # four letters at least: AAAA, AAAB, ...
    while index:
        index, rem = divmod(index, 26)
        letters = chr(65 + rem) + letters
    return letters


def file_lengths(spec: Spec, max_rows: int) -> list[int]:
    rng = random.Random(spec.seed)
    weights = [rng.lognormvariate(0.0, 0.9) for _ in range(spec.files)]
    scale = spec.rows / sum(weights)
    return [max(1, min(max_rows, round(w * scale))) for w in weights]


def pick_defect(shares: list[tuple[str, float]], draw: float) -> str | None:
    """The real-world defect a row gets for a uniform draw: each with its share, at most one."""
    for name, share in shares:
        if draw < share:
            return name
        draw -= share
    return None


def write_file(args: tuple[Path, int, int, Spec, list[str]]) -> int:
    path, index, length, spec, days = args
    rng = random.Random(spec.seed * 1_000_003 + index)
    # The real-world defects draw from a stream of their own, so that with their shares at
    # zero the files are byte for byte those the script always wrote.
    shares = spec.real_world_shares()
    defects = random.Random(spec.seed * 1_000_033 + index + 7)
    price = math.exp(rng.gauss(3.0, 1.0))
    adj_factor = rng.uniform(0.6, 1.0)
    stale_left, stale_close = 0, 0.0
    lines = [HEADER]
    for date in days[-length:]:
        roll = rng.random()
        if roll < spec.malformed_share:
            lines.append(f"{date},{price!r},{price!r}\n")  # wrong field count
            continue
        if roll < spec.malformed_share + spec.defect_share / 3:
            lines.append(f"{date},,,,,,\n")  # a date and nothing else (a holiday row)
            continue
        defect = pick_defect(shares, defects.random()) if shares else None
        if defect == "missing_share":
            continue  # a session with no line
        if defect == "empty_share":
            lines.append(f"{date},,,,,,\n")
            continue
        if defect == "jump_share":
            price *= defects.choice((4.0, 0.25))  # unexplained: adj_factor stays
        elif defect == "dividend_share":
            adj_factor *= defects.uniform(0.97, 0.995)
        elif defect == "stale_share" and not stale_left:
            stale_left, stale_close = 5, price
        open_ = price * (1 + rng.gauss(0, 0.005))
        close = open_ * (1 + rng.gauss(0.0003, 0.02))
        high = max(open_, close) * (1 + abs(rng.gauss(0, 0.008)))
        low = min(open_, close) * (1 - abs(rng.gauss(0, 0.008)))
        volume = int(rng.lognormvariate(13, 1.2))
        if stale_left:
            stale_left -= 1
            open_ = high = low = close = stale_close  # a feed that stopped
        if roll < spec.malformed_share + 2 * spec.defect_share / 3 or defect == "hilo_share":
            high, low = low, high  # High < Low
        elif roll < spec.malformed_share + spec.defect_share or defect == "zero_open_share":
            open_ = 0.0  # Open = 0
        if defect == "zero_volume_share":
            volume = 0
        lines.append(f"{date},{open_!r},{high!r},{low!r},{close!r},{close * adj_factor!r},{volume}\n")
        price = close
    path.write_text("".join(lines))
    return len(lines) - 1  # data lines: missing sessions make a file shorter than its length


def generate(out: Path, spec: Spec, workers: int = 2) -> dict[str, int]:
    marker = out / "dataset.json"
    if marker.exists() and json.loads(marker.read_text()).get("spec") == asdict(spec):
        return json.loads(marker.read_text())["written"]
    days = weekdays()
    lengths = file_lengths(spec, len(days))
    rng = random.Random(spec.seed)
    is_etf = [rng.random() < ETF_SHARE for _ in range(spec.files)]
    for folder in ("stocks", "etfs"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    jobs = []
    meta = [META_HEADER]
    for i, length in enumerate(lengths):
        symbol = symbol_name(i)
        folder = "etfs" if is_etf[i] else "stocks"
        jobs.append((out / folder / f"{symbol}.csv", i, length, spec, days))
        etf = "Y" if is_etf[i] else "N"
        meta.append(f"Y,{symbol},Synthetic {symbol} Inc.,N, ,{etf},100.0,N,,{symbol},{symbol},N\n")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = sum(pool.map(write_file, jobs, chunksize=64))
    (out / "symbols_valid_meta.csv").write_text("".join(meta))
    written = {"files": spec.files, "rows": rows}
    marker.write_text(json.dumps({"spec": asdict(spec), "written": written}, indent=2) + "\n")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write (reused when up to date)")
    parser.add_argument("--files", type=int, default=8000, help="price files (default: %(default)s)")
    parser.add_argument(
        "--rows", type=int, default=25_000_000, help="price rows in all (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--defect-share",
        type=float,
        default=0.001,
        help="share of rows that are empty, High<Low or Open=0 (default: %(default)s)",
    )
    parser.add_argument(
        "--malformed-share",
        type=float,
        default=0.0,
        help="share of rows with a wrong field count (default: %(default)s)",
    )
    parser.add_argument(
        "--real-world-defects",
        action="store_true",
        help="seed every finding of the dbt tests at its real-world rate (REAL_WORLD_RATES) "
        "instead of --defect-share",
    )
    for name, rate in REAL_WORLD_RATES.items():
        option = "--" + name.replace("_", "-")
        parser.add_argument(
            option, type=float, default=None, help=f"share of rows: {DEFECT_HELP[name]} (real: {rate:.7f})"
        )
    args = parser.parse_args()
    shares = {name: getattr(args, name) for name in REAL_WORLD_RATES}
    if args.real_world_defects:
        shares = {name: REAL_WORLD_RATES[name] if shares[name] is None else shares[name] for name in shares}
    shares = {name: share or 0.0 for name, share in shares.items()}
    if any(not 0 <= share < 1 for share in shares.values()) or sum(shares.values()) >= 1:
        parser.error("each --*-share must be in [0, 1) and all together below 1")
    defect_share = 0.0 if args.real_world_defects else args.defect_share
    spec = Spec(args.files, args.rows, args.seed, defect_share, args.malformed_share, **shares)
    written = generate(args.out, spec)
    print(f"{args.out}: {written['files']} files, {written['rows']:,} rows")


if __name__ == "__main__":
    main()
