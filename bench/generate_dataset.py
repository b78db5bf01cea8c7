"""Write a deterministic synthetic dataset in the Kaggle stock-market-dataset layout.

    python bench/generate_dataset.py --out bench/data/full                    # ~8,000 files, 25 M rows
    python bench/generate_dataset.py --out bench/data/small --files 200 --rows 500000
    python bench/generate_dataset.py --out bench/data/real --real-world-defects  # dbt's proof
    python bench/generate_dataset.py --out DIR --real-world-defects --defect-scale 10 --extra-sessions 1
    python bench/generate_dataset.py --measure ../shared/data/market_sample ../shared/data/real_universe_2023

Prices follow a geometric random walk per symbol on weekdays ending 2020-04-01, with realistic
OHLC shapes and volumes. A configurable share of rows carries the defects real files have:
a date and nothing else, High < Low, Open = 0 (all still valid CSV), and, with
--malformed-share, lines with a wrong field count, which the loader must reject.

--real-world-defects seeds instead each finding of the dbt data-quality tests at rates
measured on the two real universes (--measure; docs/generator_rates.md has the numbers), and
every symbol has rates of its own, as real symbols do:
- Each symbol gets a group, young listing (fewer than 500 rows), ETF, penny stock (median
  close below $5) or other, with the probabilities GROUP_SHARES: the mean of the two
  universes' shares of symbols (each universe weighs the same, whatever its number of files).
  The group sets its traits: a young listing's length is drawn from YOUNG_ROWS_QUANTILES and
  it is an ETF with probability YOUNG_ETF_SHARE; an ETF is written to etfs/; a penny stock
  starts at $0.50 to $5, ETFs and others at $5 or more; the older groups share the rest of
  --rows (at least 500 rows each, so --rows is a target).
- For each defect, the symbol's rate is drawn from its group's spread RATE_SPREADS, a
  zero-inflated log-normal fitted to the per-symbol rates of both universes pooled (symbols
  of FIT_MIN_ROWS rows or more: a rate on 1 row is 0 or 100%): 0 with the share of the
  group's symbols that have none, else exp(N(mu, sigma)) of the log rates of those that have
  some, at most the largest rate measured in the group. Rates are per row, but missing_share
  (per session of a symbol's life) and stale_share (runs started per row).
- --defect-scale X multiplies every rate, then caps it at MAX_RATES (a share is at most 1).
- Each session draws each defect of its symbol on its own: it has no line (missing), or a
  date and nothing else (empty), or a bar that may carry an unexplained jump (x4 or /4
  towards the symbol's first price, so prices stay bounded), an adj ratio step, the start of
  a stale run (its close held for 5 sessions), High < Low, Open = 0 and volume 0.
- The spreads are per symbol, independent of a file's length: a defect real data has mostly
  in long old histories (Open = 0 before the 1990s) has a lower pooled rate here than there.
A --*-share option gives that defect one rate for every symbol instead (alone, or on top of
--real-world-defects). REAL_WORLD_RATES, the mean of the two universes' pooled rates, is the
fixed set `bench/bench_parse.py` passes in.

--extra-sessions N appends N weekday sessions after 2020-04-01 to every file: each symbol's
random streams go forward from its first session and its start is fixed by the seed, so the
files written with N are a byte-identical prefix of those written with N + 1 (a daily refresh
is a one-line append). Extra sessions carry the same per-symbol rates except missing sessions
(a file always gets its new line), and an extra line never repeats the previous line's fields
(such a line is written as a plain bar instead, ending a stale run).

--flood COUNT:SESSIONS gives volume 0, on each of the last SESSIONS sessions, to the first
COUNT symbols (in file order) whose file has no zero volume otherwise, at least one bar before
those sessions and a bar on each of them; <out>/flooded_symbols.json lists them.

The same arguments always give byte-identical files. Without real-world rates or a flood,
the lines up to 2020-04-01 are those earlier versions of this script wrote.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import random
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger("generate_dataset")

PROJECT_DIR = Path(__file__).resolve().parent.parent
SESSIONS_SEED = PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv"
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
META_HEADER = (
    "Nasdaq Traded,Symbol,Security Name,Listing Exchange,Market Category,ETF,Round Lot Size,"
    "Test Issue,Financial Status,CQS Symbol,NASDAQ Symbol,NextShares\n"
)
EMPTY_FIELDS = ",,,,,"  # after "date,": a date and nothing else
LAST_DAY = dt.date(2020, 4, 1)
FIRST_DAY = dt.date(1962, 1, 2)
ETF_SHARE = 0.27  # without --real-world-defects: about 2,165 ETFs of the Kaggle set's 8,049 files
FLOOD_FILE = "flooded_symbols.json"

GROUPS = ("young", "etf", "penny", "other")
YOUNG_ROWS = 500  # a young listing has fewer rows
PENNY_CLOSE = 5.0  # a penny stock's median close is below
JUMP_RATIO = 3.0  # what --measure counts as a jump (the dbt test's max_ratio); the generator plants x4
JUMP_ADJ_TOLERANCE = 0.01
ADJ_STEP_TOLERANCE = 0.0001
STALE_RUN = 5
FIT_MIN_ROWS = 20  # rates of shorter files (0 or 100% on 1 row) are noise, left out of RATE_SPREADS

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
DEFECTS = tuple(DEFECT_HELP)
# Measured only: the generator plants closes equal to the day before only in stale runs.
MEASURED = (*DEFECTS, "repeat_close_share")

# Generated by --measure on ../shared/data/market_sample and ../shared/data/real_universe_2023
# (docs/generator_rates.md): the mean of the two universes' pooled rates (share of rows; of
# sessions in a symbol's life for missing_share; runs started per row for stale_share).
REAL_WORLD_RATES = {
    "jump_share": 0.0001355,
    "stale_share": 0.005802,
    "dividend_share": 0.007944,
    "zero_volume_share": 0.06369,
    "missing_share": 1.892e-05,
    "zero_open_share": 0.03631,
    "empty_share": 9.55e-06,
    "hilo_share": 2.667e-06,
}
# Share of symbols in each group: the mean of the two universes' shares.
GROUP_SHARES = {"young": 0.3888, "etf": 0.1791, "penny": 0.05112, "other": 0.381}
YOUNG_ETF_SHARE = 0.2588  # ETFs among young listings, both universes pooled
# Rows of young listings at every 5% quantile (0%, 5%, ..., 100%), both universes pooled.
# fmt: off
YOUNG_ROWS_QUANTILES = (
    1, 1, 1, 1, 1, 8, 58, 117, 171, 241, 276,
    297, 321, 342, 358, 374, 394, 426, 449, 466, 499,
)
# fmt: on
# Per group and defect: (share of symbols with rate 0, mu and sigma of log(rate) of the others,
# largest rate), fitted to the per-symbol rates of both universes pooled (files of FIT_MIN_ROWS+ rows).
RATE_SPREADS: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "young": {
        "jump_share": (0.9817, -5.659, 0.3827, 0.007353),
        "stale_share": (0.619, -3.331, 0.7973, 0.08414),
        "dividend_share": (0.7747, -4.391, 0.8824, 0.04802),
        "zero_volume_share": (0.4451, -1.757, 1.432, 1.0),
        "missing_share": (0.9982, -2.929, 0.0, 0.05344),
        "zero_open_share": (0.9982, -5.919, 0.0, 0.002688),
        "empty_share": (1.0, 0.0, 0.0, 0.0),
        "hilo_share": (1.0, 0.0, 0.0, 0.0),
    },
    "etf": {
        "jump_share": (0.9697, -6.351, 0.0, 0.001745),
        "stale_share": (0.8182, -6.185, 0.8527, 0.007446),
        "dividend_share": (0.2121, -4.926, 1.29, 0.04779),
        "zero_volume_share": (0.3636, -3.871, 1.832, 0.4023),
        "missing_share": (1.0, 0.0, 0.0, 0.0),
        "zero_open_share": (1.0, 0.0, 0.0, 0.0),
        "empty_share": (1.0, 0.0, 0.0, 0.0),
        "hilo_share": (1.0, 0.0, 0.0, 0.0),
    },
    "penny": {
        "jump_share": (0.8065, -6.138, 0.6745, 0.01007),
        "stale_share": (0.4355, -5.007, 1.068, 0.04719),
        "dividend_share": (0.871, -6.535, 1.745, 0.01464),
        "zero_volume_share": (0.4032, -3.095, 1.667, 0.5373),
        "missing_share": (0.9839, -9.222, 0.0, 9.884e-05),
        "zero_open_share": (0.9355, -1.666, 0.267, 0.2611),
        "empty_share": (0.9839, -9.201, 0.0, 0.000101),
        "hilo_share": (1.0, 0.0, 0.0, 0.0),
    },
    "other": {
        "jump_share": (0.8402, -7.031, 0.934, 0.005175),
        "stale_share": (0.3763, -5.115, 1.641, 0.06142),
        "dividend_share": (0.7784, -4.767, 1.029, 0.04775),
        "zero_volume_share": (0.4227, -3.173, 2.158, 0.839),
        "missing_share": (1.0, 0.0, 0.0, 0.0),
        "zero_open_share": (0.933, -2.556, 1.211, 0.2727),
        "empty_share": (0.9845, -8.815, 0.5227, 0.0002941),
        "hilo_share": (0.9948, -9.607, 0.0, 6.725e-05),
    },
}
# The largest rate --defect-scale may give: a share is at most 1; a symbol missing or empty on
# more than half its sessions, or stale in more than about all its rows, is no longer a symbol.
MAX_RATES = {name: 1.0 for name in DEFECTS} | {"missing_share": 0.5, "empty_share": 0.5, "stale_share": 0.2}


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
    rate_spread: bool = False  # --real-world-defects: per-symbol rates drawn from RATE_SPREADS
    defect_scale: float = 1.0
    extra_sessions: int = 0
    flood_symbols: int = 0
    flood_sessions: int = 0

    def real_world_shares(self) -> list[tuple[str, float]]:
        """The fixed rates (--*-share), the same for every symbol."""
        return [(name, getattr(self, name)) for name in DEFECTS if getattr(self, name) > 0]


NEW_SPEC_DEFAULTS = {
    "rate_spread": False,
    "defect_scale": 1.0,
    "extra_sessions": 0,
    "flood_symbols": 0,
    "flood_sessions": 0,
}


def spec_key(spec: Spec) -> dict[str, object]:
    """The spec as the dataset marker stores it; options at their defaults are left out, so a
    folder written by an earlier version of this script is still reused."""
    return {k: v for k, v in asdict(spec).items() if NEW_SPEC_DEFAULTS.get(k, object()) != v}


@dataclass(frozen=True)
class SymbolPlan:
    """One price file: who it is and what it carries, fixed before any row is written."""

    index: int
    symbol: str
    etf: bool
    length: int  # sessions up to LAST_DAY (missing ones included)
    group: str | None = None  # None: the layout of earlier versions (no --real-world-defects)
    start_price: float | None = None  # None: the price walk's own first draw
    rates: tuple[tuple[str, float], ...] = ()

    @property
    def folder(self) -> str:
        return "etfs" if self.etf else "stocks"


@dataclass(frozen=True)
class FileJob:
    path: Path
    plan: SymbolPlan
    spec: Spec
    days: list[str]  # every weekday to LAST_DAY (shared by the jobs: pickled once per chunk)
    extra_days: list[str]
    window_from: str | None = None  # first flood session
    flood: bool = False


@dataclass(frozen=True)
class FileResult:
    rows: int  # data lines: missing sessions make a file shorter than its length
    floodable: bool = False  # no zero volume, a bar before the flood window and on each session of it


# ---------------------------------------------------------------------------------------------
# Sessions and symbols


def weekdays() -> list[str]:
    days, day = [], FIRST_DAY
    while day <= LAST_DAY:
        if day.weekday() < 5:
            days.append(day.isoformat())
        day += dt.timedelta(days=1)
    return days


def extra_weekdays(count: int) -> list[str]:
    """The first `count` weekdays after LAST_DAY."""
    days, day = [], LAST_DAY
    while len(days) < count:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day.isoformat())
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


def capped_rate(name: str, rate: float, scale: float) -> float:
    return min(MAX_RATES[name], rate * scale)


def fixed_rates(spec: Spec) -> tuple[tuple[str, float], ...]:
    rates = ((name, capped_rate(name, share, spec.defect_scale)) for name, share in spec.real_world_shares())
    return tuple((name, rate) for name, rate in rates if rate > 0)


def legacy_plans(spec: Spec, max_rows: int) -> list[SymbolPlan]:
    """The layout of earlier versions: lengths from file_lengths, ETFs at ETF_SHARE, fixed rates."""
    lengths = file_lengths(spec, max_rows)
    rng = random.Random(spec.seed)
    is_etf = [rng.random() < ETF_SHARE for _ in range(spec.files)]
    rates = fixed_rates(spec)
    return [SymbolPlan(i, symbol_name(i), is_etf[i], n, rates=rates) for i, n in enumerate(lengths)]


def draw_group(rng: random.Random) -> str:
    draw = rng.random()
    for group in GROUPS:
        if draw < GROUP_SHARES[group]:
            return group
        draw -= GROUP_SHARES[group]
    return GROUPS[-1]


def young_length(rng: random.Random) -> int:
    """A draw from the measured quantiles of young listings' rows, linear between them."""
    position = rng.random() * (len(YOUNG_ROWS_QUANTILES) - 1)
    below = int(position)
    low, high = YOUNG_ROWS_QUANTILES[below], YOUNG_ROWS_QUANTILES[below + 1]
    return max(1, min(YOUNG_ROWS - 1, round(low + (high - low) * (position - below))))


def spread_lengths(groups: Sequence[str], rows: int, max_rows: int, rng: random.Random) -> list[int]:
    """Young listings: a length drawn from YOUNG_ROWS_QUANTILES; the others share what is left
    of `rows` by log-normal weights, each from 500 to `max_rows`."""
    young = {i: young_length(rng) for i, group in enumerate(groups) if group == "young"}
    weights = {i: rng.lognormvariate(0.0, 0.9) for i in range(len(groups)) if i not in young}
    left = max(0, rows - sum(young.values()))
    scale = left / sum(weights.values()) if weights else 0.0
    older = {i: max(YOUNG_ROWS, min(max_rows, round(w * scale))) for i, w in weights.items()}
    return [young[i] if i in young else older[i] for i in range(len(groups))]


def start_price(group: str, rng: random.Random) -> float:
    """A penny stock starts at $0.50 to $5 (log-uniform), ETFs and others at $5 or more, young
    listings anywhere (exp(N(3, 1)) dollars, as without --real-world-defects)."""
    if group == "penny":
        return math.exp(rng.uniform(math.log(0.5), math.log(PENNY_CLOSE)))
    price = math.exp(rng.gauss(3.0, 1.0))
    while group != "young" and price < PENNY_CLOSE:
        price = math.exp(rng.gauss(3.0, 1.0))
    return price


def draw_rate(spread: tuple[float, float, float, float], rng: random.Random) -> float:
    """One draw of a zero-inflated log-normal, at most the largest measured rate."""
    p_zero, mu, sigma, largest = spread
    if rng.random() < p_zero:
        return 0.0
    return min(largest, math.exp(rng.gauss(mu, sigma)))


def draw_rates(group: str, spec: Spec, rng: random.Random) -> tuple[tuple[str, float], ...]:
    """A symbol's rates: drawn from its group's spread (a --*-share replaces the draw), scaled."""
    rates = []
    for name in DEFECTS:
        drawn = draw_rate(RATE_SPREADS[group][name], rng)  # drawn always: the stream stays aligned
        fixed = getattr(spec, name)
        rate = capped_rate(name, fixed if fixed > 0 else drawn, spec.defect_scale)
        if rate > 0:
            rates.append((name, rate))
    return tuple(rates)


def spread_plans(spec: Spec, max_rows: int) -> list[SymbolPlan]:
    """--real-world-defects: a group per symbol, its traits and its own rates."""
    rng = random.Random(spec.seed * 1_000_037 + 3)
    groups = [draw_group(rng) for _ in range(spec.files)]
    lengths = spread_lengths(groups, spec.rows, max_rows, rng)
    plans = []
    for i, (group, length) in enumerate(zip(groups, lengths, strict=True)):
        etf = group == "etf" or (group == "young" and rng.random() < YOUNG_ETF_SHARE)
        price = start_price(group, rng)
        rates = draw_rates(group, spec, rng)
        plans.append(SymbolPlan(i, symbol_name(i), etf, length, group, price, rates))
    return plans


def symbol_plans(spec: Spec, max_rows: int) -> list[SymbolPlan]:
    return spread_plans(spec, max_rows) if spec.rate_spread else legacy_plans(spec, max_rows)


# ---------------------------------------------------------------------------------------------
# Writing


def draw_probability(name: str, rate: float) -> float:
    """A session's chance to draw a defect, for a rate per row. A stale run can only start
    outside one (STALE_RUN - 1 sessions of each run are taken), so its chance is higher."""
    if name != "stale_share":
        return rate
    return min(1.0, rate / max(1e-12, 1 - (STALE_RUN - 1) * rate))


class SymbolWalk:
    """One symbol's lines, session by session: its random streams go forward from its first
    session, so a longer file starts with the lines of a shorter one."""

    def __init__(self, spec: Spec, plan: SymbolPlan) -> None:
        self.rng = random.Random(spec.seed * 1_000_003 + plan.index)
        # The defects draw from a stream of their own, so that without them the files are
        # byte for byte those the script always wrote.
        self.defects = random.Random(spec.seed * 1_000_033 + plan.index + 7)
        self.malformed_share = spec.malformed_share
        self.defect_share = spec.defect_share
        self.rates = tuple((name, draw_probability(name, rate)) for name, rate in plan.rates)
        self.price = math.exp(self.rng.gauss(3.0, 1.0))
        if plan.start_price is not None:
            self.price = plan.start_price
        self.first_price = self.price
        self.adj_factor = self.rng.uniform(0.6, 1.0)
        self.stale_left, self.stale_close = 0, 0.0
        self.previous: str | None = None  # the fields of the last line written

    def draw_hits(self) -> dict[str, float]:
        """The defects this session has, each with where its draw fell in its rate (0 to 1)."""
        hits = {}
        for name, rate in self.rates:
            draw = self.defects.random()
            if draw < rate:
                hits[name] = draw / rate
        return hits

    def next_line(self, date: str, extra: bool, flooded: bool) -> tuple[str | None, int | None]:
        """The session's line (None: no line) and its volume (None: no bar)."""
        roll = self.rng.random()
        hits = self.draw_hits() if self.rates else {}
        volume = None
        if roll < self.malformed_share:
            fields = f"{self.price!r},{self.price!r}"  # wrong field count
        elif roll < self.malformed_share + self.defect_share / 3:
            fields = EMPTY_FIELDS  # a date and nothing else (a holiday row)
        elif "missing_share" in hits and not extra:
            return None, None  # a session with no line
        elif "empty_share" in hits:
            fields = EMPTY_FIELDS
        else:
            fields, volume = self.bar(roll, hits, flooded)
        while extra and fields == self.previous:  # never a copy of the line before: a plain bar
            self.stale_left = 0
            fields, volume = self.bar(1.0, {}, flooded)
        self.previous = fields
        return f"{date},{fields}\n", volume

    def bar(self, roll: float, hits: dict[str, float], flooded: bool) -> tuple[str, int]:
        """A bar's fields: the walk's next prices with the session's defects."""
        if "jump_share" in hits:  # unexplained: adj_factor stays; towards the first price, so bounded
            self.price *= 4.0 if self.price <= self.first_price else 0.25
        if "dividend_share" in hits:
            step = 0.97 + 0.025 * hits["dividend_share"]
            self.adj_factor = self.adj_factor / step if self.adj_factor < 0.01 else self.adj_factor * step
        starts_stale = "stale_share" in hits and not self.stale_left
        open_ = self.price * (1 + self.rng.gauss(0, 0.005))
        close = open_ * (1 + self.rng.gauss(0.0003, 0.02))
        high = max(open_, close) * (1 + abs(self.rng.gauss(0, 0.008)))
        low = min(open_, close) * (1 - abs(self.rng.gauss(0, 0.008)))
        volume = int(self.rng.lognormvariate(13, 1.2))
        if self.stale_left:
            self.stale_left -= 1
            open_ = high = low = close = self.stale_close  # a feed that stopped
        elif starts_stale:  # this close, then STALE_RUN - 1 more: a run of exactly STALE_RUN
            self.stale_left, self.stale_close = STALE_RUN - 1, close
        legacy_hilo = roll < self.malformed_share + 2 * self.defect_share / 3
        if legacy_hilo or "hilo_share" in hits:
            high, low = low, high  # High < Low
        if (not legacy_hilo and roll < self.malformed_share + self.defect_share) or "zero_open_share" in hits:
            open_ = 0.0  # Open = 0
        if flooded or "zero_volume_share" in hits:
            volume = 0
        self.price = close
        return f"{open_!r},{high!r},{low!r},{close!r},{close * self.adj_factor!r},{volume}", volume


def write_file(job: FileJob) -> FileResult:
    walk = SymbolWalk(job.spec, job.plan)
    window_from = job.window_from
    sessions = [(day, False) for day in job.days[-job.plan.length :]]
    sessions += [(day, True) for day in job.extra_days]
    lines = [HEADER]
    zero_volume, bars_before, bars_in_window = False, 0, 0
    for date, extra in sessions:
        in_window = window_from is not None and date >= window_from
        line, volume = walk.next_line(date, extra, flooded=job.flood and in_window)
        if line is None:
            continue
        lines.append(line)
        if volume is not None:
            zero_volume = zero_volume or volume == 0
            bars_in_window += in_window
            bars_before += not in_window
    job.path.write_text("".join(lines))
    floodable = (
        window_from is not None
        and not zero_volume
        and bars_before > 0
        and bars_in_window == job.spec.flood_sessions
    )
    return FileResult(len(lines) - 1, floodable)


def flood_window(spec: Spec, days: list[str], extra_days: list[str]) -> list[str]:
    """The last flood_sessions sessions of the whole range (in the extra sessions, if enough)."""
    if not spec.flood_symbols or not spec.flood_sessions:
        return []
    return (days + extra_days)[-spec.flood_sessions :]


def plant_flood(jobs: list[FileJob], results: list[FileResult], spec: Spec) -> list[str]:
    """Rewrite the first flood_symbols floodable files with volume 0 on the flood sessions."""
    chosen = [job for job, result in zip(jobs, results, strict=True) if result.floodable]
    chosen = chosen[: spec.flood_symbols]
    if len(chosen) < spec.flood_symbols:
        log.warning("flood: %d symbols asked, %d without a zero volume", spec.flood_symbols, len(chosen))
    for job in chosen:
        results[job.plan.index] = write_file(replace(job, flood=True))
    return [job.plan.symbol for job in chosen]


def metadata(plans: Iterable[SymbolPlan]) -> str:
    meta = [META_HEADER]
    for plan in plans:
        etf = "Y" if plan.etf else "N"
        symbol = plan.symbol
        meta.append(f"Y,{symbol},Synthetic {symbol} Inc.,N, ,{etf},100.0,N,,{symbol},{symbol},N\n")
    return "".join(meta)


def generate(out: Path, spec: Spec, workers: int = 2) -> dict[str, int]:
    marker = out / "dataset.json"
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec_key(spec):
        return json.loads(marker.read_text())["written"]
    days = weekdays()
    extra_days = extra_weekdays(spec.extra_sessions)
    window = flood_window(spec, days, extra_days)
    plans = symbol_plans(spec, len(days))
    for folder in ("stocks", "etfs"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    window_from = window[0] if window else None
    jobs = [
        FileJob(out / plan.folder / f"{plan.symbol}.csv", plan, spec, days, extra_days, window_from)
        for plan in plans
    ]
    log.info("writing %d files to %s", len(jobs), out)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(write_file, jobs, chunksize=64))
    (out / FLOOD_FILE).unlink(missing_ok=True)
    if window:
        flooded = plant_flood(jobs, results, spec)
        flood = {"sessions": window, "symbols": flooded}
        (out / FLOOD_FILE).write_text(json.dumps(flood, indent=2) + "\n")
        log.info("flooded %d symbols with volume 0 on %s to %s", len(flooded), window[0], window[-1])
    (out / "symbols_valid_meta.csv").write_text(metadata(plans))
    written = {"files": spec.files, "rows": sum(result.rows for result in results)}
    marker.write_text(json.dumps({"spec": spec_key(spec), "written": written}, indent=2) + "\n")
    return written


# ---------------------------------------------------------------------------------------------
# Measuring real files: per symbol, the rate of each defect the generator plants


def price_files(folder: Path) -> list[tuple[str, Path]]:
    """(folder name, file) of every price file under stocks/ and etfs/, .csv or .csv.gz."""
    found = []
    for kind in ("stocks", "etfs"):
        for pattern in ("*.csv", "*.csv.gz"):
            found += [(kind, path) for path in (folder / kind).glob(pattern)]
    return sorted(found, key=lambda item: item[1].name)


def symbol_of(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".csv")


def read_prices(path: Path) -> pd.DataFrame:
    """A price file as date (datetime64) and six float columns, in date order."""

    raw = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
    frame = pd.DataFrame({"date": pd.to_datetime(raw["Date"], errors="coerce")})
    columns = HEADER.strip().split(",")[1:]
    for column, name in zip(columns, ("open", "high", "low", "close", "adj", "volume"), strict=True):
        frame[name] = pd.to_numeric(raw[column], errors="coerce")
    return frame.dropna(subset=["date"]).sort_values("date", kind="stable").reset_index(drop=True)


def read_sessions(path: Path | None) -> np.ndarray | None:
    """The NYSE sessions (None: a universe's own dates stand for them)."""
    if path is None:
        return None

    return pd.read_csv(path)["session_date"].astype("datetime64[ns]").to_numpy()


def run_counts(closes: np.ndarray) -> tuple[int, int]:
    """(runs of STALE_RUN or more identical closes, closes equal to the one before)."""

    if len(closes) < 2:
        return 0, 0
    same = closes[1:] == closes[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    lengths = np.diff(np.append(starts, len(closes)))
    return int((lengths >= STALE_RUN).sum()), int(same.sum())


def price_moves(frame: pd.DataFrame) -> tuple[int, int]:
    """(unexplained jumps, adj ratio steps), as the dbt tests count them, on positive prices."""

    priced = frame[(frame["close"] > 0) & (frame["adj"] > 0)]
    close, adj = priced["close"].to_numpy(), priced["adj"].to_numpy()
    if len(close) < 2:
        return 0, 0
    ratio = close[1:] / close[:-1]
    change = (adj[1:] / close[1:]) / (adj[:-1] / close[:-1]) - 1
    jumps = ((ratio > JUMP_RATIO) | (ratio < 1 / JUMP_RATIO)) & (np.abs(change) <= JUMP_ADJ_TOLERANCE)
    return int(jumps.sum()), int((np.abs(change) > ADJ_STEP_TOLERANCE).sum())


def missing_sessions(dates: np.ndarray, sessions: np.ndarray) -> tuple[int, int]:
    """(sessions from the first date to the last, those without a line)."""

    if len(dates) == 0:
        return 0, 0
    life = sessions[(sessions >= dates.min()) & (sessions <= dates.max())]
    return len(life), len(np.setdiff1d(life, dates))


def symbol_group(rows: int, folder: str, median_close: float) -> str:
    if rows < YOUNG_ROWS:
        return "young"
    if folder == "etfs":
        return "etf"
    return "penny" if median_close < PENNY_CLOSE else "other"


def measure_symbol(frame: pd.DataFrame, folder: str, sessions: np.ndarray) -> dict[str, object]:
    """Traits, counts and rates of one symbol's file."""
    values = frame[["open", "high", "low", "close", "adj", "volume"]]
    empty = values.isna().all(axis=1)
    closes = frame["close"].dropna().to_numpy()
    stale, repeats = run_counts(closes)
    jumps, steps = price_moves(frame)
    life, missing = missing_sessions(frame["date"].unique(), sessions)
    positive = frame.loc[frame["close"] > 0, "close"]
    median_close = float(positive.median()) if len(positive) else math.nan
    rows = len(frame)
    counts = {
        "jump_share": jumps,
        "stale_share": stale,
        "dividend_share": steps,
        "zero_volume_share": int((frame["volume"] == 0).sum()),
        "missing_share": missing,
        "zero_open_share": int((frame["open"] == 0).sum()),
        "empty_share": int(empty.sum()),
        "hilo_share": int(((frame["high"] > 0) & (frame["low"] > 0) & (frame["high"] < frame["low"])).sum()),
        "repeat_close_share": repeats,
    }
    row: dict[str, object] = {
        "folder": folder,
        "rows": rows,
        "life_sessions": life,
        "median_close": median_close,
        "group": symbol_group(rows, folder, median_close),
    }
    for name, count in counts.items():
        denominator = life if name == "missing_share" else rows
        row[f"{name}_count"] = count
        row[name] = count / denominator if denominator else 0.0
    return row


def measure_universe(folder: Path, sessions: np.ndarray | None) -> pd.DataFrame:
    """One row per price file of a universe (a folder with stocks/ and etfs/)."""

    files = price_files(folder)
    frames = [(kind, path, read_prices(path)) for kind, path in files]
    if sessions is None:  # the union of the dates seen in the universe stands for the sessions
        sessions = np.unique(np.concatenate([frame["date"].to_numpy() for _, _, frame in frames]))
    rows = []
    for kind, path, frame in frames:
        rows.append(
            {"universe": folder.name, "symbol": symbol_of(path), **measure_symbol(frame, kind, sessions)}
        )
    log.info("%s: %d files measured", folder, len(rows))
    return pd.DataFrame(rows)


def measure(folders: Sequence[Path], sessions_file: Path | None = SESSIONS_SEED) -> pd.DataFrame:
    """Per symbol, for each universe folder: traits, defect counts and rates."""

    sessions = read_sessions(sessions_file)
    return pd.concat([measure_universe(folder, sessions) for folder in folders], ignore_index=True)


def pooled_rate(table: pd.DataFrame, name: str) -> float:
    denominator = table["life_sessions" if name == "missing_share" else "rows"].sum()
    return float(table[f"{name}_count"].sum() / denominator) if denominator else 0.0


def spread_row(table: pd.DataFrame, name: str) -> dict[str, float]:
    """Pooled rate and the per-symbol spread of one defect's rate."""
    rates = table[name]
    return {
        "pooled": pooled_rate(table, name),
        "zero": float((rates == 0).mean()),
        "median": float(rates.quantile(0.5)),
        "p90": float(rates.quantile(0.9)),
        "p99": float(rates.quantile(0.99)),
        "max": float(rates.max()),
    }


def percent(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.2%}" if value >= 0.001 else f"{value:.4%}"


def spread_markdown(table: pd.DataFrame, title: str) -> str:
    """One markdown table: for each defect, the pooled rate and the per-symbol spread."""
    lines = [
        f"**{title}**: {len(table):,} symbols, {int(table['rows'].sum()):,} rows",
        "",
        "| defect | pooled | symbols with 0 | median | p90 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in MEASURED:
        row = spread_row(table, name)
        cells = [percent(row["pooled"]), f"{row['zero']:.0%}"]
        cells += [percent(row[key]) for key in ("median", "p90", "p99", "max")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def groups_markdown(table: pd.DataFrame) -> str:
    counts = table.groupby(["universe", "group"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(GROUPS), fill_value=0)
    lines = [
        "| universe | symbols | " + " | ".join(GROUPS) + " |",
        "| --- | ---: |" + " ---: |" * len(GROUPS),
    ]
    for universe, row in counts.iterrows():
        total = int(row.sum())
        cells = [f"{int(row[g])} ({row[g] / total:.1%})" for g in GROUPS]
        lines.append(f"| {universe} | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def significant(value: float) -> float:
    return float(f"{value:.4g}")


def fit_spread(rates: np.ndarray) -> tuple[float, float, float, float]:
    """A zero-inflated log-normal: (share of 0, mean and sd of the log of the others, largest)."""

    logs = np.log(rates[rates > 0])
    if len(logs) == 0:
        return (1.0, 0.0, 0.0, 0.0)
    spread = ((rates == 0).mean(), logs.mean(), logs.std(), rates.max())
    return tuple(significant(float(value)) for value in spread)


def fit(table: pd.DataFrame) -> dict[str, object]:
    """The generator's constants from a measured table (see the module docstring)."""

    shares = table.groupby("universe")["group"].value_counts(normalize=True).unstack(fill_value=0.0)
    shares = shares.reindex(columns=list(GROUPS), fill_value=0.0).mean()
    young = table[table["group"] == "young"]
    fitted = table[table["rows"] >= FIT_MIN_ROWS]
    spreads = {
        group: {
            name: fit_spread(fitted.loc[fitted["group"] == group, name].to_numpy(dtype=float))
            for name in DEFECTS
        }
        for group in GROUPS
    }
    by_universe = [
        {name: pooled_rate(part, name) for name in DEFECTS} for _, part in table.groupby("universe")
    ]
    quantiles = young["rows"].quantile(np.linspace(0, 1, len(YOUNG_ROWS_QUANTILES))) if len(young) else []
    return {
        "REAL_WORLD_RATES": {
            name: significant(float(np.mean([rates[name] for rates in by_universe]))) for name in DEFECTS
        },
        "GROUP_SHARES": {group: significant(float(shares[group])) for group in GROUPS},
        "YOUNG_ETF_SHARE": significant(float((young["folder"] == "etfs").mean())) if len(young) else 0.0,
        "YOUNG_ROWS_QUANTILES": tuple(round(float(q)) for q in quantiles),
        "RATE_SPREADS": spreads,
    }


def measure_report(table: pd.DataFrame) -> str:
    """The measured distribution, universe by universe and group by group, as markdown."""
    parts = ["### Groups\n\n", groups_markdown(table)]
    for universe, part in table.groupby("universe", sort=False):
        parts.append(f"\n### {universe}\n\n")
        parts.append(spread_markdown(part, "all symbols"))
        for group in GROUPS:
            members = part[part["group"] == group]
            if len(members):
                parts.append("\n" + spread_markdown(members, group))
    parts.append(
        f"\n### Both universes, symbols pooled, by group (RATE_SPREADS: those with {FIT_MIN_ROWS}+ rows)\n"
    )
    for group in GROUPS:
        parts.append("\n" + spread_markdown(table[table["group"] == group], group))
    constants = fit(table)
    parts.append("\n### Fitted constants\n\n```python\n")
    parts += [f"{name} = {value!r}\n" for name, value in constants.items()]
    parts.append("```\n")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Command line


def flood_option(text: str) -> tuple[int, int]:
    try:
        count, sessions = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SYMBOL_COUNT:SESSIONS, got {text!r}") from None
    if count < 1 or sessions < 1:
        raise argparse.ArgumentTypeError(f"both counts must be at least 1, got {text!r}")
    return count, sessions


def parser_for() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, help="folder to write (reused when up to date)")
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
        help="seed every finding of the dbt tests at per-symbol rates drawn from the spreads measured "
        "on real files (RATE_SPREADS) instead of --defect-share",
    )
    for name, rate in REAL_WORLD_RATES.items():
        option = "--" + name.replace("_", "-")
        parser.add_argument(
            option,
            type=float,
            default=None,
            help=f"rate for every symbol: {DEFECT_HELP[name]} (real, pooled: {rate:.7f})",
        )
    parser.add_argument(
        "--defect-scale",
        type=float,
        default=1.0,
        help="multiply every per-symbol defect rate (capped; default: %(default)s)",
    )
    parser.add_argument(
        "--extra-sessions",
        type=int,
        default=0,
        help="weekday sessions after 2020-04-01 appended to every file (default: %(default)s)",
    )
    parser.add_argument(
        "--flood",
        type=flood_option,
        default=None,
        metavar="SYMBOL_COUNT:SESSIONS",
        help=f"volume 0 on the last SESSIONS sessions of the first SYMBOL_COUNT symbols without a "
        f"zero volume; listed in <out>/{FLOOD_FILE}",
    )
    parser.add_argument(
        "--measure",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="instead of writing: measure real universes (folders with stocks/ and etfs/) and print "
        "the per-symbol spread of each defect as markdown",
    )
    parser.add_argument(
        "--sessions",
        default=str(SESSIONS_SEED.relative_to(PROJECT_DIR)),
        help="with --measure: the NYSE sessions csv (session_date), relative to the project, or "
        "'union' for the dates seen in each universe (default: %(default)s)",
    )
    parser.add_argument("--measure-csv", type=Path, help="with --measure: write the per-symbol table here")
    return parser


def run_measure(args: argparse.Namespace) -> None:
    sessions = None if args.sessions == "union" else PROJECT_DIR / args.sessions
    table = measure(args.measure, sessions)
    if args.measure_csv:
        table.to_csv(args.measure_csv, index=False)
    print(measure_report(table), end="")


def spec_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Spec:
    shares = {name: getattr(args, name) or 0.0 for name in DEFECTS}
    if any(not 0 <= share <= 1 for share in shares.values()):
        parser.error("each --*-share must be in [0, 1]")
    if args.defect_scale < 0 or args.extra_sessions < 0:
        parser.error("--defect-scale and --extra-sessions must not be negative")
    flood_symbols, flood_sessions = args.flood or (0, 0)
    if flood_sessions > len(weekdays()) + args.extra_sessions:
        parser.error("--flood: more sessions than generated")
    defect_share = 0.0 if args.real_world_defects else args.defect_share
    return Spec(
        args.files,
        args.rows,
        args.seed,
        defect_share,
        args.malformed_share,
        **shares,
        rate_spread=args.real_world_defects,
        defect_scale=args.defect_scale,
        extra_sessions=args.extra_sessions,
        flood_symbols=flood_symbols,
        flood_sessions=flood_sessions,
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    parser = parser_for()
    args = parser.parse_args(argv)
    if args.measure:
        run_measure(args)
        return
    if args.out is None:
        parser.error("--out is required (or --measure)")
    written = generate(args.out, spec_from(args, parser))
    print(f"{args.out}: {written['files']} files, {written['rows']:,} rows")


if __name__ == "__main__":
    main()
