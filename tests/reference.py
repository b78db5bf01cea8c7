"""An independent reference: the marts recomputed with pandas straight from the CSV files.

Nothing here reads the database or shares code with the loader or the models. The rules are
the documented ones: a trading day is a row with a close; weeks start on Monday; months,
quarters and years are calendar ones; a moving average over N is null until N trading days.
The indicators are TA-Lib's (the official wheel) and numpy's (returns, volatility).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import talib

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


# The indicators' columns, each with the scale its tolerance is relative to (docs/indicators.md):
# the close for a price-scaled column (MACD crosses zero, its scale does not), 1 for the RSI,
# the value itself but at least 1e-3 for returns and volatility.
INDICATOR_SCALES = {
    "ema_12": "close",
    "ema_26": "close",
    "ema_50": "close",
    "ema_200": "close",
    "macd": "close",
    "macd_signal": "close",
    "macd_histogram": "close",
    "rsi_14": "one",
    "atr_14": "close",
    "bollinger_upper": "close",
    "bollinger_middle": "close",
    "bollinger_lower": "close",
    "return_simple": "returns",
    "return_log": "returns",
    "volatility_20": "returns",
    "volatility_252": "returns",
    "high_252": "close",
    "low_252": "close",
}


def average_true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int = 14) -> np.ndarray:
    """TA-Lib's ATR; where a high or low is missing, the documented rule (the day has no true
    range: the average is carried, the next range starts from that day's close), which TA-Lib
    cannot express: written out here, checked against TA-Lib where nothing is missing."""
    if not (np.isnan(high).any() or np.isnan(low).any()):
        return talib.ATR(high, low, close, period)
    result = np.full(len(close), np.nan)
    seen, seed_sum, average = 0, 0.0, np.nan
    for day in range(1, len(close)):
        if not (np.isnan(high[day]) or np.isnan(low[day])):
            previous = close[day - 1]
            true_range = max(high[day] - low[day], abs(previous - high[day]), abs(previous - low[day]))
            seen += 1
            if seen <= period:
                seed_sum += true_range
                if seen == period:
                    average = seed_sum / period
            else:
                average = (average * (period - 1) + true_range) / period
        result[day] = average
    return result


def rolling_sample_std(values: np.ndarray, window: int) -> np.ndarray:
    """numpy's std (ddof=1) of each full window; a window with a NaN gives NaN."""
    result = np.full(len(values), np.nan)
    if len(values) >= window:
        windows = np.lib.stride_tricks.sliding_window_view(values, window)
        result[window - 1 :] = np.std(windows, axis=1, ddof=1)
    return result


def indicators_of(prices: pd.DataFrame) -> pd.DataFrame:
    """Every indicator column of one symbol's trading days (in date order)."""
    close = prices["close"].to_numpy(float)
    high, low = prices["high"].to_numpy(float), prices["low"].to_numpy(float)
    adjusted = prices["adj_close"].to_numpy(float)
    out = prices[["symbol", "trade_date", "close"]].copy()
    for period in (12, 26, 50, 200):
        out[f"ema_{period}"] = talib.EMA(close, period)
    out["macd"], out["macd_signal"], out["macd_histogram"] = talib.MACD(close, 12, 26, 9)
    out["rsi_14"] = talib.RSI(close, 14)
    out["atr_14"] = average_true_range(high, low, close)
    upper, middle, lower = talib.BBANDS(close, 20, 2.0, 2.0, 0)
    out["bollinger_upper"], out["bollinger_middle"], out["bollinger_lower"] = upper, middle, lower
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.r_[np.nan, adjusted[1:] / adjusted[:-1]]
    ratio[~(np.r_[np.nan, adjusted[:-1]] > 0) | ~(adjusted > 0)] = np.nan
    out["return_simple"] = ratio - 1
    out["return_log"] = np.log(ratio)
    out["volatility_20"] = rolling_sample_std(out["return_log"].to_numpy(), 20) * np.sqrt(252)
    out["volatility_252"] = rolling_sample_std(out["return_log"].to_numpy(), 252) * np.sqrt(252)
    out["high_252"] = talib.MAX(close, 252)
    out["low_252"] = talib.MIN(close, 252)
    return out


def indicators(sample_dir: Path = SAMPLE_DIR) -> pd.DataFrame:
    prices = daily_prices(sample_dir)
    return pd.concat(
        [indicators_of(frame.reset_index(drop=True)) for _, frame in prices.groupby("symbol", sort=True)],
        ignore_index=True,
    )


def assert_indicators_match(actual: pd.DataFrame, expected: pd.DataFrame, rtol: float = 1e-9) -> float:
    """Same (symbol, trade_date) keys and the same nulls on both sides; every value within rtol
    of its column's scale (INDICATOR_SCALES). Returns the largest scaled difference seen."""
    keys = ["symbol", "trade_date"]
    expected = expected.rename(columns={"close": "scale_close"})
    merged = actual.merge(expected, on=keys, how="outer", suffixes=("_db", "_ref"), indicator=True)
    only = merged[merged["_merge"] != "both"]
    assert only.empty, f"{len(only)} keys on one side only:\n{only[[*keys, '_merge']].head(10)}"
    scales = {
        "close": merged["scale_close"].abs().to_numpy(float),
        "one": np.ones(len(merged)),
    }
    worst = 0.0
    for column, scale_kind in INDICATOR_SCALES.items():
        db = merged[f"{column}_db"].to_numpy(float)
        ref = merged[f"{column}_ref"].to_numpy(float)
        nulls_differ = np.isnan(db) != np.isnan(ref)
        assert not nulls_differ.any(), (
            f"{column}: {int(nulls_differ.sum())} nulls differ:\n"
            f"{merged.loc[nulls_differ, [*keys, f'{column}_db', f'{column}_ref']].head(10)}"
        )
        both = ~np.isnan(ref)
        scale = np.maximum(np.abs(ref), 1e-3) if scale_kind == "returns" else scales[scale_kind]
        error = np.abs(db[both] - ref[both]) / scale[both]
        if error.size and error.max() > rtol:
            bad = merged.loc[both, [*keys, f"{column}_db", f"{column}_ref"]][error > rtol]
            raise AssertionError(f"{column}: {len(bad)} values beyond {rtol} of its scale:\n{bad.head(10)}")
        worst = max(worst, float(error.max()) if error.size else 0.0)
    return worst


SCREENER_FLAGS = [
    "crossed_above_sma_50",
    "crossed_below_sma_50",
    "crossed_above_sma_200",
    "crossed_below_sma_200",
    "golden_cross",
    "death_cross",
    "rsi_above_70",
    "rsi_below_30",
]


def latest_day(sample_dir: Path = SAMPLE_DIR) -> pd.DataFrame:
    """fct_latest_day: each symbol's last trading day; its flags from adj_close (pandas' rolling
    means of adj_close and TA-Lib's RSI of it), None where a compared value is missing."""
    rows = []
    for symbol, frame in daily_prices(sample_dir).groupby("symbol", sort=True):
        prices = frame.reset_index(drop=True)
        values = indicators_of(prices).iloc[-1].to_dict()
        adjusted = prices["adj_close"]
        sma_50, sma_200 = adjusted.rolling(50).mean(), adjusted.rolling(200).mean()
        rsi = talib.RSI(adjusted.to_numpy(float), 14)[-1]

        def crossed(now: pd.Series, other: pd.Series, above: bool) -> bool | None:
            if len(now) < 2:
                return None
            today, yesterday = (now.iloc[-1], other.iloc[-1]), (now.iloc[-2], other.iloc[-2])
            if np.isnan([*today, *yesterday]).any():
                return None
            return (
                bool(today[0] > today[1] and yesterday[0] <= yesterday[1])
                if above
                else bool(today[0] < today[1] and yesterday[0] >= yesterday[1])
            )

        rows.append(
            {
                **values,
                "symbol": symbol,
                "day_change": values["return_simple"],
                "sma_20": prices["close"].rolling(20).mean().iloc[-1],
                "sma_50": prices["close"].rolling(50).mean().iloc[-1],
                "sma_200": prices["close"].rolling(200).mean().iloc[-1],
                "crossed_above_sma_50": crossed(adjusted, sma_50, above=True),
                "crossed_below_sma_50": crossed(adjusted, sma_50, above=False),
                "crossed_above_sma_200": crossed(adjusted, sma_200, above=True),
                "crossed_below_sma_200": crossed(adjusted, sma_200, above=False),
                "golden_cross": crossed(sma_50, sma_200, above=True),
                "death_cross": crossed(sma_50, sma_200, above=False),
                "rsi_above_70": None if np.isnan(rsi) else bool(rsi > 70),
                "rsi_below_30": None if np.isnan(rsi) else bool(rsi < 30),
            }
        )
    return pd.DataFrame(rows)
