"""The report's analysis: plain pandas over the daily marts, no database, no plotting.

Every function takes series indexed by trade date (ascending) or a frame with a trade_date
column, so the tests can feed hand-made data. Returns, volatility and drawdowns use adj_close:
dividends and splits are already priced in, so they do not show as losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252  # the usual convention for annualising daily figures
SPIKE_WINDOW = 20  # trading days in the average a day's volume is compared with
SPIKE_RATIO = 2.0  # a spike trades at least this many times that average
MIN_CORRELATION_DAYS = 20  # fewer common days than this give no correlation (shown blank)


@dataclass(frozen=True)
class Drawdown:
    """The largest fall from a running peak of adj_close, with its dates."""

    depth: float  # fraction, negative: -0.25 is a fall of 25 %
    peak_date: date  # the last high before the fall
    trough_date: date  # the low of the fall
    recovery_date: date | None  # first day back at the peak's level; None if not yet


@dataclass(frozen=True)
class ReturnStats:
    """Returns of one symbol over a range, all from adj_close."""

    trading_days: int
    total_return: float  # last / first - 1
    annualised_return: float | None  # compound, per 252 trading days; None under a year of days
    annualised_volatility: float | None  # std of daily returns * sqrt(252); None under 2 returns
    max_drawdown: Drawdown | None  # None when prices never fell
    best_days: pd.Series  # the largest daily returns, by date
    worst_days: pd.Series  # the smallest daily returns, by date


def daily_returns(adj_close: pd.Series) -> pd.Series:
    """Simple daily returns (today / previous trading day - 1); the first day has none."""
    return adj_close.pct_change(fill_method=None).iloc[1:].dropna()


def annualised_volatility(returns: pd.Series) -> float | None:
    """Sample standard deviation of daily returns scaled to a year of trading days."""
    if len(returns) < 2:
        return None
    return float(returns.std(ddof=1) * math.sqrt(TRADING_DAYS_PER_YEAR))


def drawdowns(adj_close: pd.Series) -> pd.Series:
    """Fall from the running peak on every day: 0 at a new high, -0.1 at 10 % below it."""
    return adj_close / adj_close.cummax() - 1


def max_drawdown(adj_close: pd.Series) -> Drawdown | None:
    """The deepest drawdown with its peak, trough and recovery dates (None if it never fell)."""
    series = adj_close.dropna()
    if series.empty:
        return None
    under = drawdowns(series)
    depth = float(under.min())
    if depth >= 0:
        return None
    trough = under.idxmin()
    before = series.loc[:trough]
    peak = before[before == before.max()].index[-1]  # the fall began the last day at that high
    after = series.loc[trough:]
    recovered = after[after >= series.loc[peak]]
    return Drawdown(
        depth=depth,
        peak_date=_as_date(peak),
        trough_date=_as_date(trough),
        recovery_date=_as_date(recovered.index[0]) if len(recovered) else None,
    )


def return_stats(adj_close: pd.Series, days: int = 5) -> ReturnStats:
    """Total and annualised return, volatility, max drawdown and the `days` best and worst days."""
    series = adj_close.dropna()
    returns = daily_returns(series)
    total = float(series.iloc[-1] / series.iloc[0] - 1) if len(series) else math.nan
    periods = len(series) - 1
    # Under a year, compounding a few weeks' return up to a year says nothing: leave it out.
    annualised = (
        (1 + total) ** (TRADING_DAYS_PER_YEAR / periods) - 1 if periods >= TRADING_DAYS_PER_YEAR else None
    )
    return ReturnStats(
        trading_days=len(series),
        total_return=total,
        annualised_return=annualised,
        annualised_volatility=annualised_volatility(returns),
        max_drawdown=max_drawdown(series),
        best_days=returns.nlargest(days),
        worst_days=returns.nsmallest(days),
    )


def crosses(sma_fast: pd.Series, sma_slow: pd.Series) -> pd.DataFrame:
    """Golden crosses (fast moves above slow) and death crosses (fast moves below slow).

    A cross is the first day the sign of fast - slow differs from its last non-zero sign, so a
    day of exact equality neither makes nor hides a cross. Days missing either average (the
    start of a history) are skipped. Columns: trade_date, kind ("golden"/"death"), sma_fast,
    sma_slow.
    """
    both = pd.DataFrame({"sma_fast": sma_fast, "sma_slow": sma_slow}).dropna()
    sign = np.sign(both["sma_fast"] - both["sma_slow"]).replace(0, np.nan).ffill()
    changed = sign.ne(sign.shift()) & sign.shift().notna() & sign.notna()
    found = both[changed].assign(kind=np.where(sign[changed] > 0, "golden", "death"))
    found.index.name = "trade_date"
    return found.reset_index()[["trade_date", "kind", "sma_fast", "sma_slow"]]


def volume_spikes(volume: pd.Series, window: int = SPIKE_WINDOW, ratio: float = SPIKE_RATIO) -> pd.DataFrame:
    """Days whose volume is at least `ratio` times the average of the `window` days before.

    The day itself is not in its average (a spike would inflate its own yardstick); the first
    `window` days have no average and are never spikes. Columns: trade_date, volume,
    avg_volume, ratio; by date.
    """
    average = average_volume_before(volume, window)
    frame = pd.DataFrame({"volume": volume, "avg_volume": average})
    frame["ratio"] = frame["volume"] / frame["avg_volume"]
    spikes = frame[(frame["avg_volume"] > 0) & (frame["ratio"] >= ratio)]
    spikes.index.name = "trade_date"
    return spikes.reset_index()


def average_volume_before(volume: pd.Series, window: int = SPIKE_WINDOW) -> pd.Series:
    """Average volume of the `window` trading days before each day (NaN until there are that many)."""
    return volume.astype("float64").shift(1).rolling(window, min_periods=window).mean()


def correlation_matrix(adj_close: pd.DataFrame, min_days: int = MIN_CORRELATION_DAYS) -> pd.DataFrame:
    """Pearson correlation of daily returns between symbols (one adj_close column each).

    Each pair uses the days both traded; pairs with fewer than `min_days` common returns are NaN.
    """
    returns = adj_close.sort_index().pct_change(fill_method=None)
    return returns.corr(method="pearson", min_periods=min_days)


def movers(adj_close: pd.DataFrame) -> pd.DataFrame:
    """Return of each symbol (column) from its first to its last price in the frame.

    Columns: symbol, first_date, first, last_date, last, total_return; the biggest gain first.
    """
    rows = []
    for symbol, series in adj_close.items():
        prices = series.dropna()
        if prices.empty:
            continue
        rows.append(
            {
                "symbol": symbol,
                "first_date": _as_date(prices.index[0]),
                "first": float(prices.iloc[0]),
                "last_date": _as_date(prices.index[-1]),
                "last": float(prices.iloc[-1]),
                "total_return": float(prices.iloc[-1] / prices.iloc[0] - 1),
            }
        )
    columns = ["symbol", "first_date", "first", "last_date", "last", "total_return"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("total_return", ascending=False, ignore_index=True)


def _as_date(value: object) -> date:
    return pd.Timestamp(value).date()
