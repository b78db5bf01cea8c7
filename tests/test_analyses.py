"""Every analysis compiles with dbt, runs, and answers its question as pandas does."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from devtools.databases import Database, create_database, drop_database
from devtools.project import PROJECT_DIR
from tests import reference

# Runs dbt or reads the built sample: `make test` runs it on both TimescaleDB editions.
pytestmark = pytest.mark.editions

ANALYSES = sorted(p.stem for p in (PROJECT_DIR / "analyses").glob("*.sql"))


@pytest.fixture(scope="module")
def compiled(sample_db: Database) -> dict[str, str]:
    proc = sample_db.dbt("compile", "--select", "path:analyses", "--vars", "{symbol: AAPL}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    folder = Path(sample_db.env["DBT_TARGET_PATH"]) / "compiled" / "stock_analytics" / "analyses"
    return {p.stem: p.read_text() for p in folder.glob("*.sql")}


def test_every_analysis_compiles_and_returns_rows(sample_db, compiled):
    assert sorted(compiled) == ANALYSES and len(ANALYSES) == 5
    for name, sql in compiled.items():
        assert len(sample_db.frame(sql)) > 0, name


def expected_quarter(prices: pd.DataFrame, symbol: str, quarter: str) -> tuple[str, int, float, bool]:
    """(quarter, trading days, average volume, complete?) from the CSV and the NYSE calendar.

    quarter: "last_complete", "latest" or "YYYY-Qn". A quarter is complete when the symbol's
    last day reaches the quarter's last NYSE session.
    """
    sessions = pd.to_datetime(
        pd.read_csv(PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv")["session_date"]
    )
    last_session = sessions.groupby(sessions.dt.to_period("Q")).max()
    days = prices[prices["symbol"] == symbol]
    last_day = days["trade_date"].max()
    by_quarter = days.groupby(days["trade_date"].dt.to_period("Q"))["volume"].agg(["count", "mean"])
    complete = {q: last_day >= last_session[q] for q in by_quarter.index}
    if quarter == "last_complete":
        chosen = max(q for q in by_quarter.index if complete[q])
    elif quarter == "latest":
        chosen = by_quarter.index.max()
    else:
        chosen = pd.Period(quarter.replace("-", ""), freq="Q")
    row = by_quarter.loc[chosen]
    return f"{chosen.year}-Q{chosen.quarter}", int(row["count"]), float(row["mean"]), bool(complete[chosen])


def show_avg_volume(db: Database, variables: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """Compile the analysis with these --vars and run it: (dbt's process, the rows)."""
    proc = db.dbt("compile", "--select", "avg_volume_last_quarter", "--vars", variables)
    if proc.returncode != 0:
        return proc, []
    path = Path(db.env["DBT_TARGET_PATH"]) / "compiled/stock_analytics/analyses/avg_volume_last_quarter.sql"
    return proc, db.frame(path.read_text()).to_dict("records")


def check_quarter(row: dict, expected: tuple[str, int, float, bool]) -> None:
    quarter, days, average, complete = expected
    assert (row["quarter"], row["trading_days"], row["is_complete"]) == (quarter, days, complete)
    assert row["avg_volume"] == pytest.approx(average, rel=1e-9)


def test_avg_volume_last_quarter_is_the_last_complete_one(sample_db, compiled):
    """The sample ends 2021-01-27: the default is 2020-Q4, not the three weeks of 2021-Q1."""
    [row] = sample_db.frame(compiled["avg_volume_last_quarter"]).to_dict("records")
    assert row["symbol"] == "AAPL"
    check_quarter(row, expected_quarter(reference.daily_prices(), "AAPL", "last_complete"))
    assert row["quarter"] == "2020-Q4" and row["quarter_start"] == date(2020, 10, 1)


@pytest.mark.parametrize("quarter", ["latest", "2020-Q2", "1999Q1"])
def test_avg_volume_of_the_quarter_asked_for(sample_db, quarter):
    proc, [row] = show_avg_volume(sample_db, f"{{symbol: CVX, quarter: {quarter}}}")
    assert proc.returncode == 0, proc.stdout[-2000:]
    check_quarter(row, expected_quarter(reference.daily_prices(), "CVX", quarter))
    if quarter == "latest":
        assert (row["quarter"], row["is_complete"]) == ("2021-Q1", False)


def test_avg_volume_of_a_symbol_without_data_is_no_row(sample_db):
    proc, rows = show_avg_volume(sample_db, "{symbol: MSFT}")  # the sample has no MSFT
    assert (proc.returncode, rows) == (0, [])


def test_avg_volume_last_quarter_refuses_a_bad_quarter(sample_db):
    proc, _ = show_avg_volume(sample_db, "{symbol: AAPL, quarter: 2020-Q5}")
    assert proc.returncode != 0
    assert "var quarter must be last_complete (the default), latest or YYYY-Qn" in proc.stdout
    assert "not '2020-Q5'" in proc.stdout


def test_a_quarter_is_complete_when_the_data_reaches_its_last_session(tmp_path):
    """2022-12-31 was a Saturday: data up to Friday the 30th, Q4's last NYSE session, completes
    Q4 (a calendar-day rule would not); data up to the 29th does not."""
    sessions = pd.to_datetime(
        pd.read_csv(PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv")["session_date"]
    )
    days = sessions[sessions.between("2022-06-01", "2022-12-30")]
    assert days.max() == pd.Timestamp("2022-12-30")
    folder = tmp_path / "data"
    folder.mkdir()
    for symbol, last in (("FULL", "2022-12-30"), ("SHORT", "2022-12-29")):
        lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
        lines += [
            f"{d:%Y-%m-%d},10,11,9,10,10,{1000 + i}" for i, d in enumerate(days) if d <= pd.Timestamp(last)
        ]
        (folder / f"{symbol}.csv").write_text("\n".join(lines) + "\n")
    db = create_database(tmp_path / "db")
    try:
        assert db.run_loader(folder).returncode == 0
        # Just what the analysis reads (the data tests have their own suite).
        built = db.dbt(
            "build",
            "--select",
            "+fct_price_averages_quarterly +dim_symbols nyse_trading_sessions",
            "--resource-type",
            "model",
            "--resource-type",
            "seed",
        )
        assert built.returncode == 0, built.stdout[-3000:]
        prices = pd.concat(
            pd.read_csv(folder / f"{s}.csv", parse_dates=["Date"])
            .rename(columns={"Date": "trade_date", "Volume": "volume"})
            .assign(symbol=s)
            for s in ("FULL", "SHORT")
        )
        for symbol, quarter in (("FULL", "2022-Q4"), ("SHORT", "2022-Q3")):
            _, [row] = show_avg_volume(db, f"{{symbol: {symbol}}}")
            assert row["quarter"] == quarter, symbol
            check_quarter(row, expected_quarter(prices, symbol, "last_complete"))
    finally:
        drop_database(db)


def test_highest_volume_day_per_symbol(sample_db, compiled):
    result = sample_db.frame(compiled["highest_volume_day_per_symbol"])
    prices = reference.daily_prices()
    expected = prices.loc[prices.groupby("symbol")["volume"].idxmax(), ["symbol", "trade_date", "volume"]]
    got = {r.symbol: (pd.Timestamp(r.trade_date), r.volume) for r in result.itertuples()}
    assert got == {r.symbol: (r.trade_date, r.volume) for r in expected.itertuples()}


def test_weekly_average_close_matches_the_weekly_mart(sample_db, compiled):
    result = sample_db.frame(compiled["weekly_average_close"]).rename(columns={"week_start": "period_start"})
    result["period_start"] = pd.to_datetime(result["period_start"])
    expected = reference.period_averages("weekly")
    reference.assert_matches(result, expected, ["symbol", "period_start"], ["avg_close", "trading_days"])


def test_daily_price_change_restarts_at_each_symbol(sample_db, compiled):
    result = sample_db.frame(compiled["daily_price_change"])
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
    result = sample_db.frame(compiled["yearly_first_last_price"])
    prices = reference.daily_prices()
    expected = (
        prices.assign(year=prices["trade_date"].dt.year)
        .groupby(["symbol", "year"])["close"]
        .agg(first_close="first", last_close="last")
        .reset_index()
    )
    reference.assert_matches(result, expected, ["symbol", "year"], ["first_close", "last_close"])
