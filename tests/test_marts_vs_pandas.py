"""The marts against pandas, on the real sample, to 1e-9 relative: every symbol, every row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from devtools.databases import Database
from tests import reference

# Runs dbt or reads the built sample: `make test` runs it on both TimescaleDB editions.
pytestmark = pytest.mark.editions


@pytest.mark.parametrize("period", ["weekly", "monthly", "quarterly", "yearly"])
def test_period_mart_equals_pandas(sample_db: Database, period: str):
    actual = sample_db.frame(f"select * from marts.fct_price_averages_{period}")
    actual["period_start"] = pd.to_datetime(actual["period_start"])
    expected = reference.period_averages(period)
    assert len(actual) == len(expected)
    worst = reference.assert_matches(
        actual, expected, ["symbol", "period_start"], reference.PERIOD_VALUE_COLUMNS
    )
    assert worst < 1e-9


def test_daily_prices_mart_equals_the_files(sample_db: Database):
    """fct_daily_prices: one row per symbol and trading day (a day with a close), as in the CSVs."""
    actual = sample_db.frame("select * from marts.fct_daily_prices")
    actual["trade_date"] = pd.to_datetime(actual["trade_date"])
    expected = reference.daily_prices()
    assert len(actual) == len(expected) == 187_459
    values = ["open", "high", "low", "close", "adj_close", "volume"]
    worst = reference.assert_matches(actual, expected, ["symbol", "trade_date"], values)
    assert worst < 1e-9


def test_moving_averages_equal_pandas_rolling_mean(sample_db: Database):
    actual = sample_db.frame("select * from marts.fct_daily_moving_averages")
    actual["trade_date"] = pd.to_datetime(actual["trade_date"])
    expected = reference.moving_averages()
    assert len(actual) == len(expected) == 187_459  # every row with a close, in every symbol
    values = ["close", *(f"sma_{n}" for n in reference.MOVING_AVERAGE_WINDOWS)]
    worst = reference.assert_matches(actual, expected, ["symbol", "trade_date"], values)
    assert worst < 1e-9


def test_moving_averages_are_null_until_the_window_is_full(sample_db: Database):
    rows = sample_db.query(
        """
        select symbol, count(*), count(sma_20), count(sma_30), count(sma_50), count(sma_200)
          from marts.fct_daily_moving_averages group by symbol
        """
    )
    for symbol, days, *filled in rows:
        assert filled == [max(days - n + 1, 0) for n in (20, 30, 50, 200)], symbol
    counts = {r[0]: r[1:] for r in rows}
    assert counts["ABNB"] == (32, 13, 3, 0, 0)  # fewer than 50 rows: sma_50 and sma_200 never fill


def test_the_first_full_window_is_the_mean_of_exactly_n_closes(sample_db: Database):
    closes = [
        r[0]
        for r in sample_db.query(
            "select close from marts.fct_daily_moving_averages where symbol = 'ABNB' order by trade_date"
        )
    ]
    sma = [
        r[0]
        for r in sample_db.query(
            "select sma_20 from marts.fct_daily_moving_averages where symbol = 'ABNB' order by trade_date"
        )
    ]
    assert sma[:19] == [None] * 19
    assert sma[19] == pytest.approx(sum(closes[:20]) / 20, rel=1e-12)
    assert sma[31] == pytest.approx(sum(closes[12:32]) / 20, rel=1e-12)


def test_querying_one_symbol_reads_only_that_symbols_rows(sample_db: Database):
    [[plan]] = sample_db.query(
        "explain (analyze, format json) select * from marts.fct_daily_moving_averages where symbol = 'ABNB'"
    )
    plan = plan if isinstance(plan, list) else json.loads(plan)

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    all_nodes = list(nodes(plan[0]["Plan"]))
    rows_touched = max(n["Actual Rows"] * n["Actual Loops"] for n in all_nodes)
    assert rows_touched <= 32, "a node processed rows of other symbols"
    # The symbol filter is pushed below both window functions into every chunk's scan (index
    # condition, or filter on a chunk small enough to read whole), so no window sees other symbols.
    scans = [n for n in all_nodes if n.get("Relation Name")]
    assert scans
    for scan in scans:
        conditions = scan.get("Index Cond", "") + scan.get("Filter", "") + scan.get("Recheck Cond", "")
        assert "symbol" in conditions, scan["Relation Name"]
    assert sum(n["Actual Rows"] * n["Actual Loops"] for n in scans) == 32
