"""An independent reference: the marts recomputed with pandas straight from the CSV files.

Nothing here reads the database or shares code with the loader or the models. The rules are
the documented ones: a trading day is a row with a close; weeks start on Monday; months,
quarters and years are calendar ones; a moving average over N is null until N trading days.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from devtools.project import SAMPLE_DIR

PERIOD_VALUE_COLUMNS = [
    "trading_days",
    "avg_high",
    "avg_low",
    "avg_volume",
    "avg_close",
    "period_open",
    "period_high",
    "period_low",
    "period_close",
    "total_volume",
]
MOVING_AVERAGE_WINDOWS = (20, 30, 50, 200)


@cache
def daily_prices(sample_dir: Path = SAMPLE_DIR) -> pd.DataFrame:
    """Trading days of every sample price file: symbol, trade_date and the prices, by date."""
    frames = []
    for path in sorted([*sample_dir.glob("stocks/*.csv"), *sample_dir.glob("etfs/*.csv")]):
        frame = pd.read_csv(path, parse_dates=["Date"])
        frame.insert(0, "symbol", path.stem)
        frames.append(frame)
    prices = pd.concat(frames, ignore_index=True).rename(
        columns={
            "Date": "trade_date",
            "Open": "open",
            "High": "high",
            "Low": "low",
            "Close": "close",
            "Adj Close": "adj_close",
            "Volume": "volume",
        }
    )
    prices = prices.dropna(subset=["close"])
    # An open, high or low of 0 beside a positive close is Yahoo's "not recorded": missing, so
    # the candle's open is the first real one and an average is of recorded values.
    for column in ("open", "high", "low"):
        prices[column] = prices[column].where(~((prices[column] == 0) & (prices["close"] > 0)))
    prices["candle_open"] = prices["open"].where(prices["open"] > 0)
    return prices.sort_values(["symbol", "trade_date"], ignore_index=True)


def period_start(dates: pd.Series, period: str) -> pd.Series:
    if period == "weekly":
        return dates - pd.to_timedelta(dates.dt.day_of_week, unit="D")
    return dates.dt.to_period({"monthly": "M", "quarterly": "Q", "yearly": "Y"}[period]).dt.start_time


def period_averages(period: str, sample_dir: Path = SAMPLE_DIR) -> pd.DataFrame:
    prices = daily_prices(sample_dir)
    grouped = prices.assign(period_start=period_start(prices["trade_date"], period)).groupby(
        ["symbol", "period_start"], sort=True
    )
    result = grouped.agg(
        trading_days=("close", "size"),
        avg_high=("high", "mean"),
        avg_low=("low", "mean"),
        avg_volume=("volume", "mean"),
        avg_close=("close", "mean"),
        period_open=("candle_open", "first"),  # first non-null, in date order
        period_high=("high", "max"),
        period_low=("low", "min"),
        period_close=("close", "last"),
        total_volume=("volume", "sum"),
    )
    return result.reset_index()


def moving_averages(sample_dir: Path = SAMPLE_DIR) -> pd.DataFrame:
    prices = daily_prices(sample_dir)[["symbol", "trade_date", "close"]].copy()
    by_symbol = prices.groupby("symbol", sort=False)["close"]
    for window in MOVING_AVERAGE_WINDOWS:
        prices[f"sma_{window}"] = by_symbol.transform(lambda s, n=window: s.rolling(n).mean())
    return prices


def assert_matches(
    actual: pd.DataFrame, expected: pd.DataFrame, keys: list[str], values: list[str], rtol: float = 1e-9
) -> float:
    """Same keys on both sides; every value equal to rtol (both null counts as equal).
    Returns the largest relative difference seen."""
    merged = actual.merge(expected, on=keys, how="outer", suffixes=("_db", "_ref"), indicator=True)
    only = merged[merged["_merge"] != "both"]
    assert only.empty, f"{len(only)} keys on one side only:\n{only[[*keys, '_merge']].head(10)}"
    worst = 0.0
    for column in values:
        db = merged[f"{column}_db"].astype(float).to_numpy()
        ref = merged[f"{column}_ref"].astype(float).to_numpy()
        both_null = np.isnan(db) & np.isnan(ref)
        close = np.isclose(db, ref, rtol=rtol, atol=0.0) | both_null
        if not close.all():
            bad = merged.loc[~close, [*keys, f"{column}_db", f"{column}_ref"]]
            raise AssertionError(f"{column}: {len(bad)} values differ beyond rtol={rtol}:\n{bad.head(10)}")
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(db - ref) / np.abs(ref)
        rel = rel[~both_null & np.isfinite(rel)]
        worst = max(worst, float(rel.max()) if rel.size else 0.0)
    return worst
