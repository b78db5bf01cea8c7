"""Percentiles as the benchmarks report them."""

from __future__ import annotations

import math


def percentile(values: list[float], pct: float, method: str = "rounded") -> float:
    """The pct-th percentile (0-100) of values, one of the values itself; NaN for none.

    method "rounded": the value at rank round(pct/100 * (n - 1)) of the sorted values (what
    bench_api and bench_incremental report); "nearest_rank": the classic nearest rank,
    ceil(pct/100 * n) (what bench_stream reports). Two methods so that no recorded figure in
    docs/benchmarks.md changes its meaning.
    """
    ordered = sorted(values)
    if not ordered:
        return math.nan
    if method == "rounded":
        rank = round(pct / 100 * (len(ordered) - 1))
    elif method == "nearest_rank":
        rank = math.ceil(pct / 100 * len(ordered)) - 1
    else:
        raise ValueError(f"unknown percentile method {method!r}")
    return ordered[min(len(ordered) - 1, max(0, rank))]
