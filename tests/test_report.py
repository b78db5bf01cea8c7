"""The HTML report: its analysis against independent computations on hand-made data, the CLI's
errors, and the sample's report as a person's browser sees it (headless Chromium)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import math
import os
import pty
import re
import shutil
import statistics
import struct
import subprocess
import sys
import termios
import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from devtools.databases import Database
from devtools.project import PROJECT_DIR
from report import analysis, build, charts, data, formatting
from tests import reference, support
from tests.browser import ChromiumSession, chromium_available

MAKE_REPORT = PROJECT_DIR / "report" / "make_report.py"
# One folder a pass: make test runs the apache pass alongside the suite.
APACHE_PASS = os.environ.get(support.EXPECTED_LICENSE_VAR) == "apache"
SCREENSHOTS = PROJECT_DIR / "target" / ("report_screenshots_apache" if APACHE_PASS else "report_screenshots")
# The sample ends on 2021-01-27; the default range is the two years up to it.
SAMPLE_RANGE = (pd.Timestamp("2019-01-28"), pd.Timestamp("2021-01-27"))
MAX_PAGE_BYTES = 1_000_000
MAX_BUILD_SECONDS = 60


def days(n: int, start: str = "2021-01-04") -> pd.DatetimeIndex:
    return pd.bdate_range(start, periods=n)


# --- analysis, against independent computations ---------------------------------------------


def test_daily_returns_and_volatility_match_a_hand_computation():
    prices = pd.Series([100.0, 110.0, 99.0, 99.0, 108.9], index=days(5))
    returns = analysis.daily_returns(prices)
    assert returns.tolist() == pytest.approx([0.10, -0.10, 0.0, 0.10])
    assert returns.index.tolist() == days(5)[1:].tolist()  # the first day has no return
    expected = statistics.stdev([0.10, -0.10, 0.0, 0.10]) * math.sqrt(252)
    assert analysis.annualised_volatility(returns) == pytest.approx(expected)
    assert analysis.annualised_volatility(returns.iloc[:1]) is None  # one return has no spread


def brute_force_drawdown(prices: list[float]) -> tuple[float, int, int, int | None]:
    """Deepest fall from any earlier high: (depth, peak, trough, recovery) by position."""
    best = (0.0, 0, 0)
    for j in range(len(prices)):
        for i in range(j + 1):
            fall = prices[j] / prices[i] - 1
            if fall < best[0] - 1e-15:
                best = (fall, i, j)
    depth, peak, trough = best
    # the peak is the highest price before the trough (the latest such day if it repeats)
    high = max(prices[: trough + 1])
    peak = max(i for i in range(trough + 1) if prices[i] == high)
    recovery = next((k for k in range(trough, len(prices)) if prices[k] >= high), None)
    return depth, peak, trough, recovery


@pytest.mark.parametrize(
    "prices",
    [
        [10, 12, 9, 11, 12, 13, 6, 7, 14],  # the second fall is deeper, and recovers
        [10, 9, 8, 7],  # falls from the first day, never recovers
        [5, 5, 4, 5, 3, 3.5],  # a repeated high, no recovery
        list(100 * np.cumprod(1 + np.random.default_rng(7).normal(0, 0.02, 300))),
    ],
)
def test_max_drawdown_matches_a_brute_force_search(prices):
    index = days(len(prices))
    found = analysis.max_drawdown(pd.Series(prices, index=index, dtype=float))
    depth, peak, trough, recovery = brute_force_drawdown([float(p) for p in prices])
    assert found.depth == pytest.approx(depth)
    assert found.trough_date == index[trough].date()
    assert found.peak_date == index[peak].date()
    assert found.recovery_date == (index[recovery].date() if recovery is not None else None)


def test_max_drawdown_is_none_for_prices_that_never_fall():
    assert analysis.max_drawdown(pd.Series([1.0, 2.0, 2.0, 3.0], index=days(4))) is None


def test_return_stats_total_annualised_best_and_worst():
    rng = np.random.default_rng(3)
    prices = pd.Series(50 * np.cumprod(1 + rng.normal(0.001, 0.015, 253)), index=days(253))
    stats = analysis.return_stats(prices, days=3)
    values = prices.tolist()
    returns = {prices.index[i]: values[i] / values[i - 1] - 1 for i in range(1, len(values))}
    total = values[-1] / values[0] - 1
    assert stats.trading_days == 253
    assert stats.total_return == pytest.approx(total)
    # 253 prices are exactly 252 daily returns: one year, so annualised equals total.
    assert stats.annualised_return == pytest.approx(total)
    ranked = sorted(returns.items(), key=lambda kv: kv[1])
    assert list(stats.best_days.index) == [d for d, _ in reversed(ranked[-3:])]
    assert list(stats.worst_days.index) == [d for d, _ in ranked[:3]]
    assert stats.best_days.tolist() == pytest.approx([r for _, r in reversed(ranked[-3:])])
    # Under a year of data a return is not annualised (compounding weeks up to a year misleads).
    assert analysis.return_stats(prices.iloc[:100]).annualised_return is None


def test_golden_and_death_crosses():
    index = days(9)
    fast = pd.Series([np.nan, 1, 2, 3, 5, 5, 6, 4, 3], index=index)
    slow = pd.Series([np.nan, np.nan, 3, 4, 4, 5, 5, 5, 2], index=index)
    # diff from day 2: -1, -1, +1 (golden), 0 (equal: no cross), +1 (still above), -1 (death), +1 (golden)
    found = analysis.crosses(fast, slow)
    assert found["trade_date"].tolist() == [index[4], index[7], index[8]]
    assert found["kind"].tolist() == ["golden", "death", "golden"]
    assert found["sma_fast"].tolist() == [5, 4, 3] and found["sma_slow"].tolist() == [4, 5, 2]


def test_no_cross_when_the_averages_never_change_sides():
    index = days(5)
    assert analysis.crosses(pd.Series([1.0, 2, 3, 4, 5], index=index), pd.Series(0.5, index=index)).empty


def test_volume_spikes_against_the_20_days_before():
    volume = [100.0] * 20 + [250.0, 150.0, 100.0, 400.0] + [100.0] * 5
    index = days(len(volume))
    found = analysis.volume_spikes(pd.Series(volume, index=index))
    expected = []
    for i in range(20, len(volume)):
        average = sum(volume[i - 20 : i]) / 20
        if volume[i] >= 2 * average:
            expected.append((index[i], volume[i], average, volume[i] / average))
    assert expected and [e[0] for e in expected] == [index[20], index[23]]
    got = list(found[["trade_date", "volume", "avg_volume", "ratio"]].itertuples(index=False, name=None))
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert np.allclose([g[1:] for g in got], [e[1:] for e in expected])


def test_no_spike_before_the_window_is_full():
    volume = pd.Series([1.0, 1000.0] + [1.0] * 18, index=days(20))
    assert analysis.volume_spikes(volume).empty


def test_correlation_matrix_matches_numpy_on_common_days():
    rng = np.random.default_rng(11)
    index = days(60)
    a = 100 * np.cumprod(1 + rng.normal(0, 0.01, 60))
    b = a * (1 + rng.normal(0, 0.005, 60))
    c = 100 * np.cumprod(1 + rng.normal(0, 0.01, 60))
    frame = pd.DataFrame({"A": a, "B": b, "C": c}, index=index)
    frame.loc[index[30:35], "C"] = np.nan  # C did not trade for a week
    frame["D"] = np.nan
    frame.loc[index[:10], "D"] = 100 + np.arange(10.0)  # too few days to correlate
    corr = analysis.correlation_matrix(frame)
    returns = {s: frame[s].to_numpy()[1:] / frame[s].to_numpy()[:-1] - 1 for s in frame}
    for x, y in [("A", "B"), ("A", "C"), ("B", "C")]:
        both = ~np.isnan(returns[x]) & ~np.isnan(returns[y])
        assert corr.loc[x, y] == pytest.approx(np.corrcoef(returns[x][both], returns[y][both])[0, 1])
    assert corr.loc["A", "B"] > 0.8
    assert corr["D"].drop("D").isna().all()


def test_movers_rank_the_return_from_first_to_last_price():
    index = days(4)
    frame = pd.DataFrame(
        {"UP": [10, 11, 12, 15.0], "DOWN": [20, 18, 19, 10.0], "LATE": [np.nan, np.nan, 4, 5.0]}, index=index
    )
    movers = analysis.movers(frame)
    assert movers["symbol"].tolist() == ["UP", "LATE", "DOWN"]
    assert movers["total_return"].tolist() == pytest.approx([0.5, 0.25, -0.5])
    assert movers.loc[movers["symbol"] == "LATE", "first_date"].item() == index[2].date()


def test_numbers_are_formatted_for_people():
    assert formatting.price(1234.5) == "1,234.50"
    assert formatting.integer(12345678.4) == "12,345,678"
    assert formatting.percent(0.1234) == "+12.34 %" and formatting.percent(-0.5, signed=False) == "-50.00 %"
    assert formatting.compact(4.2e9) == "4.20 B" and formatting.compact(12_345_678) == "12.3 M"
    assert formatting.price(None) == formatting.percent(float("nan")) == formatting.MISSING
    assert formatting.period_label(date(2020, 7, 1), "quarterly") == "2020 Q3"
    assert formatting.period_label(date(2020, 3, 16), "weekly") == "week of 2020-03-16"


def plotted(values: object) -> np.ndarray:
    """A trace's array as the page carries it (plotly's typed array, or a list) as floats."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).astype(float)
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def short_history(count: int) -> pd.DataFrame:
    """count days of bars with the columns price_chart reads; indicators null as in the mart's
    first days (RSI from day 15, Bollinger from day 20, MACD from day 34)."""
    index = days(count)
    close = 100 + np.arange(count, dtype=float)
    frame = pd.DataFrame(
        {"open": close - 1, "high": close + 2, "low": close - 2, "close": close, "adj_close": close},
        index=index,
    )
    frame["volume"] = 1000.0
    frame["avg_volume_20"] = np.nan
    for column in ("sma_20", "sma_50", "sma_200", *data.INDICATORS):
        frame[column] = np.nan
    frame.loc[index[14:], "rsi_14"] = 60.0
    for column, offset in (("bollinger_upper", 5.0), ("bollinger_middle", 0.0), ("bollinger_lower", -5.0)):
        frame.loc[index[19:], column] = close[19:] + offset
    return frame


def test_indicator_panels_share_the_candles_axis_and_say_why_they_are_empty():
    """Without a database: the four panels, the RSI guides, the band's fill, a short history."""
    empty = pd.DataFrame(columns=["trade_date", "kind", "sma_slow"])
    fig = charts.price_chart("NEW", short_history(25), empty, empty, "range")
    traces = {t.name: t for t in fig.data}
    # Every panel zooms with the others: the x axes all follow the bottom one.
    assert {fig.layout[f"xaxis{n}"].matches for n in ("", "2", "3")} == {"x4"}
    assert traces[charts.INDICATOR_NAMES["bollinger_lower"]].fill == "tonexty"
    names = [t.name for t in fig.data]
    lower, upper = (names.index(charts.INDICATOR_NAMES[f"bollinger_{b}"]) for b in ("lower", "upper"))
    assert lower == upper + 1
    assert {traces[f"{kind} ({level})"].y for kind, level in (("Overbought", 70), ("Oversold", 30))} == {
        (70, 70),
        (30, 30),
    }
    assert traces[charts.INDICATOR_NAMES["rsi_14"]].yaxis == "y3"
    assert list(fig.layout.yaxis3.range) == [0, 100]
    # 25 days: RSI and bands are drawn, MACD (day 34) is not yet, and the chart says so.
    assert "MACD: under 34 days of data" in names and "Signal: under 34 days of data" in names
    assert [a.text for a in fig.layout.annotations] == ["No MACD yet: it needs 34 trading days of data"]
    assert fig.layout.annotations[0].yref == "y4 domain"


def test_a_symbol_without_metadata_has_no_name_rather_than_nan():
    """Most symbols of a real universe have no metadata row: pandas then holds NaN, not None."""
    assert [build._text(v) for v in (None, float("nan"), np.nan, "Apple Inc.")] == ["", "", "", "Apple Inc."]


def test_a_day_without_a_whole_bar_shows_its_close_and_draws_cleanly_in_chromium(tmp_path):
    """Real files have days without an open (Yahoo's zero open), high or low: no candle for
    them (Plotly draws one as a broken path, a console error), a marker at the close instead."""
    import plotly.graph_objects as go  # noqa: PLC0415 (the report's dependency)

    bars = short_history(25)
    bars.iloc[3, bars.columns.get_loc("open")] = np.nan
    bars.iloc[5, bars.columns.get_loc("open")] = 0.0
    bars.iloc[7, bars.columns.get_loc("high")] = np.nan
    empty = pd.DataFrame(columns=["trade_date", "kind", "sma_slow"])
    fig = charts.price_chart("GAPS", bars, empty, empty, "range")
    traces = {t.name: t for t in fig.data}
    incomplete = [bars.index[i].strftime("%Y-%m-%d") for i in (3, 5, 7)]
    candles = traces["Daily bar (open, high, low, close)"]
    assert len(candles.x) == 22 and not set(incomplete) & set(candles.x)
    [close_only] = [t for t in fig.data if t.name.startswith("Close of a day without a whole bar")]
    assert list(close_only.x) == incomplete
    assert list(close_only.y) == [bars["close"].iloc[i] for i in (3, 5, 7)]

    # The same chart with every day as a candle, as it was drawn before: the check sees the error.
    every_day_a_candle = go.Figure(fig)
    every_day_a_candle.data[0].update(
        x=[d.strftime("%Y-%m-%d") for d in bars.index],
        **{column: bars[column] for column in ("open", "high", "low", "close")},
    )
    reports = {}
    with ChromiumSession() as browser:
        for name, figure in (("whole_bars", fig), ("every_day_a_candle", every_day_a_candle)):
            page = tmp_path / f"{name}.html"
            page.write_text(figure.to_html(include_plotlyjs=True, full_html=True))
            reports[name] = browser.open_page(page.as_uri(), wait_ms=300)
    assert reports["whole_bars"].problems == []
    assert any("Expected number" in problem for problem in reports["every_day_a_candle"].problems)


# --- the CLI ----------------------------------------------------------------------------------


def run_report(
    db: Database, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """make_report.py as the reader role (or with env), its output captured."""
    return subprocess.run(
        [sys.executable, str(MAKE_REPORT), *args],
        env=env or db.role_env("reader"),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def sample_report(sample_db: Database, tmp_path_factory: pytest.TempPathFactory):
    """The default report of the sample (the 30 most traded symbols: all 24), timed."""
    out = tmp_path_factory.mktemp("report") / "report"
    started = time.monotonic()
    proc = run_report(sample_db, "--out", str(out))
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    return out, proc, seconds


# The report's behaviour is the same on both TimescaleDB editions: these tests run once
# (one_pass); its numbers, from marts of either form, are checked on both.
@pytest.mark.one_pass
def test_unreachable_database_is_one_line_and_exit_1(sample_db, tmp_path):
    env = {**sample_db.role_env("reader"), "PGHOST": "127.0.0.1", "PGPORT": "1"}
    proc = run_report(sample_db, "--out", str(tmp_path / "r"), env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("make_report: cannot connect to the database (127.0.0.1:1/")
    assert "Connection refused" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.one_pass
def test_unknown_symbol_is_named_on_one_line_and_exit_1(sample_db, tmp_path):
    proc = run_report(sample_db, "--symbols", "AAPL", "NOSUCH", "--out", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["make_report: unknown symbol: NOSUCH"]
    assert not (tmp_path / "r").exists()  # nothing written for a report that cannot be made
    # In the metadata but without prices (ABT is listed, the sample has no ABT file).
    proc = run_report(sample_db, "--symbols", "abt", "--out", str(tmp_path / "r"))
    assert (proc.returncode, proc.stderr.strip()) == (1, "make_report: no prices loaded for: ABT")


@pytest.mark.one_pass
def test_bad_arguments_exit_2(sample_db, tmp_path):
    proc = run_report(sample_db, "--start", "2021-01-01", "--end", "2020-01-01")
    assert proc.returncode == 2 and "--start 2021-01-01 is after --end 2020-01-01" in proc.stderr
    proc = run_report(sample_db, "--top", "5", "--symbols", "AAPL")
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


@pytest.mark.one_pass
def test_a_symbol_without_days_in_the_range_gets_a_page_saying_so(sample_db, tmp_path):
    out = tmp_path / "r"
    proc = run_report(
        sample_db,
        "--symbols",
        "ABNB",
        "AAPL",
        "--start",
        "2020-01-01",
        "--end",
        "2020-06-30",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "ABNB has no trading days in 2020-01-01 to 2020-06-30" in proc.stderr
    assert "No trading days in 2020-01-01 to 2020-06-30" in (out / "ABNB.html").read_text()
    index = (out / "index.html").read_text()
    assert "No pair of symbols has 20 common trading days" in index  # AAPL alone: no heatmap
    assert 'data-chart="movers"' in index and 'data-chart="correlation"' not in index
    assert 'data-chart="prices"' in (out / "AAPL.html").read_text()


@pytest.mark.one_pass
def test_a_progress_bar_on_a_terminal_and_none_in_a_pipe(sample_db, tmp_path):
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a fresh pty is 0 wide
    proc = subprocess.Popen(
        [sys.executable, str(MAKE_REPORT), "--top", "2", "--out", str(tmp_path / "tty")],
        env=sample_db.role_env("reader"),
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=terminal,
        stdin=subprocess.DEVNULL,
    )
    os.close(terminal)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
        while chunk := os.read(master, 4096):
            seen += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    assert "report: 100%" in seen.decode() and "2/2" in seen.decode()
    piped = run_report(sample_db, "--top", "2", "--out", str(tmp_path / "pipe"))
    assert (piped.returncode, piped.stderr) == (0, "")


@pytest.mark.editions
def test_sample_report_is_written_fast_and_light(sample_report):
    out, proc, seconds = sample_report
    assert proc.stdout.strip() == str((out / "index.html").resolve())
    pages = sorted(p.name for p in out.glob("*.html"))
    assert pages == sorted(
        ["index.html", *(f"{s}.html" for s in reference.daily_prices()["symbol"].unique())]
    )
    assert seconds < MAX_BUILD_SECONDS, seconds
    heavy = {p.name: p.stat().st_size for p in out.glob("*.html") if p.stat().st_size > MAX_PAGE_BYTES}
    assert heavy == {}
    # Offline by construction: no page names any web address (the browser test checks the rest).
    assert [p.name for p in out.glob("*.html") if re.search(r"https?://", p.read_text())] == []
    # The one shared script is plotly.js as the installed package ships it, and nothing else.
    assert sorted(p.name for p in (out / "assets").iterdir()) == ["plotly.min.js", "report.css"]


@pytest.mark.one_pass
def test_symbols_are_ranked_by_shares_traded_in_the_range(sample_report):
    out, _, _ = sample_report
    prices = reference.daily_prices()
    in_range = prices[prices["trade_date"].between(*SAMPLE_RANGE)]
    expected = in_range.groupby("symbol")["volume"].sum().sort_values(ascending=False).index.tolist()
    table = (out / "index.html").read_text().split('id="symbols-table"')[1].split("</table>")[0]
    assert re.findall(r'<td><a href="([^"]+)\.html">', table) == expected


@pytest.mark.editions
def test_symbol_page_numbers_match_pandas_on_the_csv(sample_report):
    """AAPL's figures as printed equal a computation straight from the sample CSV."""
    out, _, _ = sample_report
    html = (out / "AAPL.html").read_text()
    prices = reference.daily_prices()
    aapl = prices[(prices["symbol"] == "AAPL") & prices["trade_date"].between(*SAMPLE_RANGE)]
    adj = aapl.set_index("trade_date")["adj_close"]
    returns = adj.to_numpy()[1:] / adj.to_numpy()[:-1] - 1
    total = adj.iloc[-1] / adj.iloc[0] - 1
    volatility = np.std(returns, ddof=1) * math.sqrt(252)
    running_peak = np.maximum.accumulate(adj.to_numpy())
    falls = adj.to_numpy() / running_peak - 1
    trough = adj.index[int(np.argmin(falls))]
    assert f"{total * 100:+,.2f} %" in html
    assert f"{volatility * 100:,.2f} %" in html
    assert f"{falls.min() * 100:+,.2f} %" in html and f"trough {trough:%Y-%m-%d}" in html
    assert f"{aapl['close'].iloc[-1]:,.2f} USD" in html  # last close, 2 decimals
    best = adj.index[1:][int(np.argmax(returns))]
    assert f'<tr><td>{best:%Y-%m-%d}</td><td class="num up">{returns.max() * 100:+,.2f} %</td></tr>' in html
    # The yearly table carries the mart's averages with thousands separators.
    year = aapl[aapl["trade_date"].dt.year == 2020]
    assert f"{year['volume'].mean():,.0f}" in html


def page_figure(html: str, div_id: str) -> tuple[list[dict], dict]:
    """The traces and layout a page hands to Plotly.newPlot for the chart div_id."""
    call = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', html)
    assert call, div_id
    decoder = json.JSONDecoder()
    traces, end = decoder.raw_decode(html, call.end())
    layout, _ = decoder.raw_decode(html, html.index("{", end))
    return traces, layout


@pytest.mark.one_pass
def test_symbol_page_charts_the_indicator_marts_values(sample_report, sample_db):
    """AAPL's price chart carries Bollinger bands on the candles, and RSI and MACD panels
    beneath, with the values of marts.fct_daily_indicators, which equal TA-Lib on the CSV."""
    out, _, _ = sample_report
    traces, layout = page_figure((out / "AAPL.html").read_text(), "chart-prices")
    by_name = {t["name"]: t for t in traces}
    names = charts.INDICATOR_NAMES
    series = {
        c: by_name[names[c]] for c in ("bollinger_upper", "bollinger_lower", "rsi_14", "macd", "macd_signal")
    }
    # The bands on the candles' axes, RSI and MACD on panels 3 and 4, all on one zoomable x axis.
    candles = next(t for t in traces if t["type"] == "candlestick")
    assert {(t.get("xaxis", "x"), t.get("yaxis", "y")) for t in (candles, series["bollinger_upper"])} == {
        ("x", "y")
    }
    assert series["rsi_14"]["yaxis"] == "y3" and series["macd"]["yaxis"] == "y4"
    assert {layout[f"xaxis{n}"]["matches"] for n in ("", "2", "3")} == {"x4"}
    assert layout["yaxis3"]["range"] == [0, 100]
    guides = {t["name"]: plotted(t["y"]).tolist() for t in traces if t["name"].startswith("Over")}
    assert guides == {"Overbought (70)": [70, 70], "Oversold (30)": [30, 30]}
    x = pd.to_datetime(series["rsi_14"]["x"])
    assert (x[0], x[-1]) == SAMPLE_RANGE
    plotted_values = {
        column: pd.Series(plotted(t["y"]), index=pd.to_datetime(t["x"])) for column, t in series.items()
    }
    # The histogram is two traces (green above zero, red below): together, one value a day.
    positive, negative = (by_name[names[f"macd_histogram_{side}"]] for side in ("up", "down"))
    histogram = np.fmax(plotted(positive["y"]), plotted(negative["y"]))
    assert not np.isnan(histogram).any()
    assert (np.isnan(plotted(positive["y"])) != np.isnan(plotted(negative["y"]))).all()
    plotted_values["macd_histogram"] = pd.Series(histogram, index=x)

    with contextlib.closing(sample_db.connect("reader")) as conn:  # the report's own role and query
        mart = data.daily_indicators(conn, "AAPL", *(d.date() for d in SAMPLE_RANGE))
    assert len(mart) == len(x) and (mart.index == x).all()
    for column, values in plotted_values.items():
        np.testing.assert_allclose(values.to_numpy(), mart[column].to_numpy(), rtol=1e-12, err_msg=column)
    # Known days, against TA-Lib on the sample CSV: the crash's low RSI, and the range's last day;
    # to 1e-9 of the close, as tests/test_indicators.py holds the mart (1 for the RSI).
    prices = reference.daily_prices()
    aapl = prices[(prices["symbol"] == "AAPL") & prices["close"].notna()].reset_index(drop=True)
    expected = reference.indicators_of(aapl).set_index("trade_date")
    for day in ("2020-03-16", "2021-01-27"):
        when = pd.Timestamp(day)
        for column, values in plotted_values.items():
            scale = 1.0 if column == "rsi_14" else expected.at[when, "close"]
            assert values[when] == pytest.approx(expected.at[when, column], rel=0, abs=1e-9 * scale), (
                day,
                column,
            )
    assert plotted_values["rsi_14"][pd.Timestamp("2020-03-16")] < 40 < plotted_values["rsi_14"].iloc[-1]
    assert (plotted_values["bollinger_upper"] > plotted_values["bollinger_lower"]).all()


# --- in a browser -----------------------------------------------------------------------------

# Full-page screenshots cost a second or more each: the overview, the most traded stock, the
# shortest history (no SMA 200, under a year) and a bond ETF (small moves) cover what differs.
SCREENSHOT_PAGES = ("index", "AAPL", "ABNB", "AGG")
SYMBOL_CHARTS = {"prices": "g.trace.boxes path", "returns": "g.trace.scatter", "periods": "g.trace.bars path"}
INDEX_CHARTS = {"movers": "g.trace.bars path", "correlation": ".hm image"}


def chart_selectors(chart: str, drawn: str) -> dict[str, str]:
    """What every chart must show with a non-zero size: the plot, its title, axis titles, marks."""
    root = f'[data-chart="{chart}"]'
    return {
        "plot": f"{root} .main-svg",
        "title": f"{root} .gtitle",
        "x title": f'{root} [class^="x"][class$="title"]',
        "y title": f'{root} [class^="y"][class$="title"]',
        "key": f"{root} .legend, {root} .colorbar",  # a legend, or the heatmap's colour scale
        "marks": f"{root} {drawn}",
    }


# Every page costs Chromium seconds to draw.
@pytest.mark.one_pass
def test_pages_render_in_chromium_without_errors_or_network(sample_report):
    if not chromium_available():
        pytest.fail(
            "headless Chromium missing: run `bash scripts/ensure_chromium.sh` and install requirements"
        )
    out, _, _ = sample_report
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    pages = ["index", *sorted(p.stem for p in out.glob("*.html") if p.stem != "index")]
    with ChromiumSession() as browser:
        for page in pages:
            charts = INDEX_CHARTS if page == "index" else SYMBOL_CHARTS
            selectors = {
                (chart, what): selector
                for chart, drawn in charts.items()
                for what, selector in chart_selectors(chart, drawn).items()
            }
            report = browser.open_page(
                (out / f"{page}.html").as_uri(),
                screenshot=SCREENSHOTS / f"{page}.png" if page in SCREENSHOT_PAGES else None,
                wait_ms=300,
                selectors=[*selectors.values(), ".chart"],
            )
            assert report.problems == [], (page, report.problems)
            assert report.requests[0] == (out / f"{page}.html").as_uri()
            own = {(out / f"{page}.html").as_uri(), *(p.as_uri() for p in (out / "assets").iterdir())}
            assert set(report.requests) <= own, (page, report.requests)
            assert len(report.elements[".chart"]) == len(charts), page
            for (chart, what), selector in selectors.items():
                sizes = report.elements[selector]
                assert any(w > 0 and h > 0 for w, h in sizes), (page, chart, what)
    for page in SCREENSHOT_PAGES:
        assert (SCREENSHOTS / f"{page}.png").stat().st_size > 20_000, page


@pytest.mark.one_pass
def test_indicator_panels_are_drawn_in_chromium(sample_report):
    """The price chart's four panels each show their axis title and legend; a history too short
    for MACD (ABNB, 32 days) says so inside the empty panel."""
    out, _, _ = sample_report
    root = '[data-chart="prices"]'
    selectors = {
        "y titles": f"{root} .ytitle, {root} .y2title, {root} .y3title, {root} .y4title",
        "legends": f"{root} g.legend, {root} g.legend2, {root} g.legend3, {root} g.legend4",
        "band fill": f"{root} g.trace.scatter path.js-fill",
        "lines": f"{root} g.trace.scatter path.js-line",
        "note": f"{root} .annotation-text",
    }
    with ChromiumSession() as browser:
        pages = {
            page: browser.open_page(
                (out / f"{page}.html").as_uri(), wait_ms=300, selectors=list(selectors.values())
            )
            for page in ("AAPL", "ABNB")
        }
    for page, report in pages.items():
        assert report.problems == [], (page, report.problems)
        # A flat line (an RSI guide) is a box of no height: a line is seen when it has a width.
        seen = {
            what: [s for s in report.elements[selector] if s[0] > 0 and (s[1] > 0 or what == "lines")]
            for what, selector in selectors.items()
        }
        assert len(seen["y titles"]) == 4 and len(seen["legends"]) == 4, (page, seen)
        assert len(seen["band fill"]) >= 1, page  # the shaded Bollinger band
        # 2 bands and the SMAs with data (ABNB: SMA 20 only), the volume average, RSI and its
        # 2 guides, MACD and signal (ABNB: none yet).
        assert len(seen["lines"]) == (2 + 3 + 1 + 3 + 2 if page == "AAPL" else 2 + 1 + 1 + 3), page
    assert pages["AAPL"].elements[selectors["note"]] == []
    assert len(pages["ABNB"].elements[selectors["note"]]) == 1


@pytest.mark.one_pass
def test_the_browser_check_sees_a_broken_page(sample_report, tmp_path):
    """The check above is not vacuous: without plotly.js and with a CDN link, it fails the page."""
    out, _, _ = sample_report
    html = (out / "AAPL.html").read_text()
    broken = tmp_path / "AAPL.html"  # no assets/ beside it
    broken.write_text(html.replace("</body>", '<img src="https://cdn.example.com/logo.png"></body>'))
    with ChromiumSession() as browser:
        report = browser.open_page(broken.as_uri(), selectors=['[data-chart="prices"] .main-svg'])
    assert any("Plotly is not defined" in e for e in report.page_errors), report.page_errors
    assert any("assets/plotly.min.js" in f for f in report.failed_requests), report.failed_requests
    assert report.external_requests == ["https://cdn.example.com/logo.png"]
    assert report.elements['[data-chart="prices"] .main-svg'] == []


def test_the_dbt_exposure_lists_every_mart_the_report_reads():
    """Lineage stays true: the exposure's depends_on are exactly the relations report/ queries."""
    import yaml  # noqa: PLC0415 (dbt's dependency; only this test reads yml)

    source = (PROJECT_DIR / "report" / "data.py").read_text()
    read = set(re.findall(r"\{MARTS\}\.(\w+)", source))
    read.discard("fct_price_averages_")  # fct_price_averages_{period}: one per period
    read |= {f"fct_price_averages_{period}" for period in data.PERIODS}
    exposures = yaml.safe_load((PROJECT_DIR / "models" / "marts" / "_marts__models.yml").read_text())[
        "exposures"
    ]
    found = [e for e in exposures if e["name"] == "stock_report"]
    assert len(found) == 1, "models/marts/_marts__models.yml needs the stock_report exposure"
    [report] = found
    assert report["type"] in {"application", "dashboard"}
    assert {re.fullmatch(r"ref\('(\w+)'\)", d).group(1) for d in report["depends_on"]} == read
