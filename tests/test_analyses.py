"""Every analysis compiles with dbt, runs, and answers its question as pandas does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests import reference
from tests.support import PROJECT_DIR, Database

ANALYSES = sorted(p.stem for p in (PROJECT_DIR / "analyses").glob("*.sql"))


@pytest.fixture(scope="module")
def compiled(sample_db: Database) -> dict[str, str]:
    proc = sample_db.dbt("compile", "--select", "path:analyses", "--vars", "{symbol: AAPL}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    folder = Path(sample_db.env["DBT_TARGET_PATH"]) / "compiled" / "stock_analytics" / "analyses"
    return {p.stem: p.read_text() for p in folder.glob("*.sql")}


def run(db: Database, sql: str) -> pd.DataFrame:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
    finally:
        conn.close()


def test_every_analysis_compiles_and_returns_rows(sample_db, compiled):
    assert sorted(compiled) == ANALYSES and len(ANALYSES) == 5
    for name, sql in compiled.items():
        assert len(run(sample_db, sql)) > 0, name


def test_avg_volume_last_quarter(sample_db, compiled):
    result = run(sample_db, compiled["avg_volume_last_quarter"])
    prices = reference.daily_prices()
    aapl = prices[prices["symbol"] == "AAPL"]
    last_quarter = aapl["trade_date"].dt.to_period("Q").max()
    in_quarter = aapl[aapl["trade_date"].dt.to_period("Q") == last_quarter]
    [row] = result.to_dict("records")
    assert row["symbol"] == "AAPL" and row["trading_days"] == len(in_quarter)
    assert row["avg_volume"] == pytest.approx(in_quarter["volume"].mean(), rel=1e-9)


def test_highest_volume_day_per_symbol(sample_db, compiled):
    result = run(sample_db, compiled["highest_volume_day_per_symbol"])
    prices = reference.daily_prices()
    expected = prices.loc[prices.groupby("symbol")["volume"].idxmax(), ["symbol", "trade_date", "volume"]]
    got = {r.symbol: (pd.Timestamp(r.trade_date), r.volume) for r in result.itertuples()}
    assert got == {r.symbol: (r.trade_date, r.volume) for r in expected.itertuples()}


def test_weekly_average_close_matches_the_weekly_mart(sample_db, compiled):
    result = run(sample_db, compiled["weekly_average_close"]).rename(columns={"week_start": "period_start"})
    result["period_start"] = pd.to_datetime(result["period_start"])
    expected = reference.period_averages("weekly")
    reference.assert_matches(result, expected, ["symbol", "period_start"], ["avg_close", "trading_days"])


def test_daily_price_change_restarts_at_each_symbol(sample_db, compiled):
    result = run(sample_db, compiled["daily_price_change"])
    firsts = result.groupby("symbol").head(1)
    assert firsts["previous_close"].isna().all() and len(firsts) == 24
    assert result["previous_close"].isna().sum() == 24  # only each symbol's first day
    prices = reference.daily_prices()
    expected = prices.assign(change=prices.groupby("symbol")["close"].diff())
    merged = result.assign(trade_date=pd.to_datetime(result["trade_date"])).merge(
        expected[["symbol", "trade_date", "change"]], on=["symbol", "trade_date"], suffixes=("", "_ref")
    )
    assert len(merged) == len(result)
    reference.assert_matches(
        merged[["symbol", "trade_date", "change"]],
        merged[["symbol", "trade_date", "change_ref"]].rename(columns={"change_ref": "change"}),
        ["symbol", "trade_date"],
        ["change"],
    )


def test_yearly_first_last_price(sample_db, compiled):
    result = run(sample_db, compiled["yearly_first_last_price"])
    prices = reference.daily_prices()
    expected = (
        prices.assign(year=prices["trade_date"].dt.year)
        .groupby(["symbol", "year"])["close"]
        .agg(first_close="first", last_close="last")
        .reset_index()
    )
    reference.assert_matches(result, expected, ["symbol", "year"], ["first_close", "last_close"])
