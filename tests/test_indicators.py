"""fct_daily_indicators against TA-Lib and numpy (tests/reference.py) on the real sample, and
what a recursive indicator does on a day whose input is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from devtools.databases import Database
from devtools.project import SAMPLE_DIR
from tests import reference

INDICATOR_COLUMNS = list(reference.INDICATOR_SCALES)


def indicators(db: Database, where: str = "true") -> pd.DataFrame:
    frame = db.frame(f"select * from marts.fct_daily_indicators where {where} order by symbol, trade_date")
    frame["trade_date"] = pd.to_datetime(frame["trade_date"])
    return frame


@pytest.mark.editions
def test_indicators_equal_talib_and_numpy_on_the_sample(sample_db: Database):
    actual = indicators(sample_db)
    expected = reference.indicators()
    assert list(actual.columns) == ["symbol", "trade_date", *INDICATOR_COLUMNS]
    assert len(actual) == len(expected) == 187_459
    assert reference.assert_indicators_match(actual, expected) < 1e-9


@pytest.mark.editions
def test_each_indicator_starts_where_talib_does(sample_db: Database):
    """The first value of each column, by trading day number (1 = the first day)."""
    counts = dict(sample_db.query("select symbol, count(*) from marts.fct_daily_indicators group by symbol"))
    first_days = {
        "ema_12": 12, "ema_26": 26, "ema_50": 50, "ema_200": 200, "macd": 34, "macd_signal": 34,
        "rsi_14": 15, "atr_14": 15, "bollinger_upper": 20, "return_log": 2, "volatility_20": 21,
        "volatility_252": 253, "high_252": 252,
    }  # fmt: skip
    filled = sample_db.query(
        "select symbol, "
        + ", ".join(f"count({column})" for column in first_days)
        + " from marts.fct_daily_indicators group by symbol order by symbol"
    )
    for symbol, *values in filled:
        assert values == [max(counts[symbol] - first + 1, 0) for first in first_days.values()], symbol


def test_a_day_without_high_or_low_carries_the_atr(fresh_db: Database, tmp_path: Path):
    """Staging nulls a high of 0 beside a positive close (Yahoo's "not recorded"): that day has
    no true range, the ATR is carried, the next day's range starts from its close, and the ATR
    goes on for ever after; the indicators of the close do not see it."""
    data = tmp_path / "data" / "stocks"
    data.mkdir(parents=True)
    lines = (SAMPLE_DIR / "stocks" / "AMD.csv").read_text().splitlines()
    gap_line = 400  # a day well after the ATR has started
    fields = lines[gap_line].split(",")
    gap_date = fields[0]
    fields[2] = "0"  # High
    lines[gap_line] = ",".join(fields)
    (data / "AMD.csv").write_text("\n".join(lines) + "\n")
    assert fresh_db.run_loader(data.parent).returncode == 0
    built = fresh_db.dbt("build")
    assert built.returncode == 0, built.stdout[-3000:]

    actual = indicators(fresh_db)
    stored_high = "select high from marts.fct_daily_prices where trade_date = %s"
    assert fresh_db.scalar(stored_high, (gap_date,)) is None
    prices = reference.daily_prices(tmp_path / "data")
    assert np.isnan(prices.loc[prices.trade_date == gap_date, "high"]).all()
    expected = reference.indicators(tmp_path / "data")
    assert reference.assert_indicators_match(actual, expected) < 1e-9

    atr = actual.set_index("trade_date")["atr_14"]
    position = atr.index.get_loc(pd.Timestamp(gap_date))
    assert atr.iloc[position] == atr.iloc[position - 1]  # carried
    assert atr.iloc[position:].notna().all()
    # the next day's true range starts from the gap day's close
    day_after = prices[prices.trade_date > gap_date].iloc[0]
    gap_close = prices.loc[prices.trade_date == gap_date, "close"].item()
    true_range = max(
        day_after.high - day_after.low, abs(gap_close - day_after.high), abs(gap_close - day_after.low)
    )
    assert atr.iloc[position + 1] == pytest.approx((atr.iloc[position] * 13 + true_range) / 14, rel=1e-12)


@pytest.mark.editions
def test_the_screener_equals_the_reference_on_the_sample(sample_db: Database):
    actual = sample_db.frame("select * from marts.fct_latest_day order by symbol")
    actual["trade_date"] = pd.to_datetime(actual["trade_date"])
    expected = reference.latest_day()
    assert list(actual.symbol) == list(expected.symbol)  # one row per symbol
    assert (actual.trade_date == expected.trade_date).all()
    for flag in reference.SCREENER_FLAGS:
        assert actual[flag].tolist() == expected[flag].tolist(), flag
    values = ["close", "day_change", "sma_20", "sma_50", "sma_200", *INDICATOR_COLUMNS]
    values.remove("return_simple")
    values.remove("return_log")
    assert reference.assert_matches(actual, expected, ["symbol"], values) < 1e-9
    # the question a screen asks, and the sample's answer today
    crossed = "select symbol from marts.fct_latest_day where crossed_below_sma_50 order by symbol"
    assert [symbol for (symbol,) in sample_db.query(crossed)] == list(
        expected.loc[expected.crossed_below_sma_50.eq(True), "symbol"]
    )


def test_a_split_the_close_is_not_adjusted_for_flags_nothing(fresh_db: Database, tmp_path: Path):
    """A 2:1 split on the last day of a file whose close is not split-adjusted: the close halves,
    adj_close (adjusted) does not move. The close is now far below its SMAs and its RSI of the
    close plunges, yet the screener flags no cross and no RSI extreme: it reads adj_close."""
    data = tmp_path / "data" / "stocks"
    data.mkdir(parents=True)
    lines = (SAMPLE_DIR / "stocks" / "AAPL.csv").read_text().splitlines()
    header, rows = lines[0], [line.split(",") for line in lines[1:]]
    for number, fields in enumerate(rows):
        fields[5] = repr(float(fields[5]) / 2)  # Adj Close: adjusted for the split, all days
        if number == len(rows) - 1:
            for column in (1, 2, 3, 4):  # Open, High, Low, Close of the split day
                fields[column] = repr(float(fields[column]) / 2)
    (data / "AAPL.csv").write_text("\n".join([header, *(",".join(fields) for fields in rows)]) + "\n")
    assert fresh_db.run_loader(data.parent).returncode == 0
    built = fresh_db.dbt("build")
    assert built.returncode == 0, built.stdout[-3000:]

    (row,) = fresh_db.frame("select * from marts.fct_latest_day").to_dict("records")
    # the trap: the close fell through both SMAs of the close, and its RSI sees a crash
    day_before = fresh_db.frame(
        "select close, sma_50, sma_200 from marts.fct_daily_moving_averages"
        " order by trade_date desc limit 1 offset 1"
    ).iloc[0]
    assert day_before.close > day_before.sma_50 and day_before.close > day_before.sma_200
    assert row["close"] < row["sma_50"] and row["close"] < row["sma_200"]
    assert row["rsi_14"] < 30
    flags = {flag: row[flag] for flag in reference.SCREENER_FLAGS}
    assert flags == dict.fromkeys(reference.SCREENER_FLAGS, False)
    expected_change = reference.latest_day(tmp_path / "data").day_change.item()
    assert row["day_change"] == pytest.approx(expected_change, rel=1e-12)
