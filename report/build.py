"""Build the report: per symbol, read the marts, analyse, chart and write its page; then the overview."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2.extensions
from tqdm import tqdm

from report import analysis, charts, data, formatting, pages

log = logging.getLogger(__name__)

MAX_CORRELATION_SYMBOLS = 30  # beyond that a heatmap's cells are too small to read
TOP_SPIKES = 10  # rows of the spikes table
TOP_MOVERS = 5  # rows of the gainers and losers tables
HEAVY_PAGE_BYTES = 1_000_000  # about seven years of daily bars and indicators; two years is ~0.33 MB


@dataclass(frozen=True)
class Range:
    """The report's inclusive date range."""

    start: date
    end: date

    @property
    def text(self) -> str:
        return f"{formatting.day(self.start)} to {formatting.day(self.end)}"


@dataclass
class BuildResult:
    """What was written, with the numbers docs/report.md quotes."""

    index: Path
    pages: dict[str, Path] = field(default_factory=dict)
    page_bytes: dict[str, int] = field(default_factory=dict)  # file name -> size, index.html included
    seconds: float = 0.0


def default_range(conn: psycopg2.extensions.connection, start: date | None, end: date | None) -> Range:
    """The range asked for; without an end, the last trading day; without a start, two years before."""
    end = end or data.last_trade_date(conn)
    if start is None:
        start = (pd.Timestamp(end) - pd.DateOffset(years=2) + pd.Timedelta(days=1)).date()
    return Range(start, end)


def build_report(
    conn: psycopg2.extensions.connection,
    symbols: list[str],
    period: Range,
    out_dir: Path,
    *,
    selection: str,
    progress: bool | None = None,
) -> BuildResult:
    """Write out_dir/index.html and one page per symbol; progress=None shows a bar on a terminal."""
    started = time.monotonic()
    info = data.symbols(conn, symbols)  # raises on an unknown symbol before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    pages.write_assets(out_dir)
    result = BuildResult(index=out_dir / "index.html")
    common = _common_context(conn)
    rows = []
    bar = tqdm(symbols, desc="report", unit="symbol", disable=None if progress is None else not progress)
    for symbol in bar:
        bar.set_postfix_str(symbol)
        row = info[info["symbol"] == symbol].iloc[0]
        context, summary = _symbol_page(conn, symbol, row, period)
        path = out_dir / pages.page_name(symbol)
        size = result.page_bytes[path.name] = pages.write_page(path, "symbol.html.j2", {**common, **context})
        if size > HEAVY_PAGE_BYTES:
            log.warning("%s is %.1f MB: a shorter range (--start) keeps pages light", path.name, size / 1e6)
        result.pages[symbol] = path
        rows.append(summary)
    context = _overview(conn, symbols, rows, period, selection)
    result.page_bytes["index.html"] = pages.write_page(result.index, "index.html.j2", {**common, **context})
    result.seconds = time.monotonic() - started
    log.info("wrote %d pages to %s in %.1f s", len(result.page_bytes), out_dir, result.seconds)
    return result


def _common_context(conn: psycopg2.extensions.connection) -> dict[str, Any]:
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "database": conn.info.dbname,
        "role": conn.info.user,
    }


def _symbol_page(
    conn: psycopg2.extensions.connection, symbol: str, info: pd.Series, period: Range
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template context of one symbol's page and its row of the overview table."""
    bars = data.daily_bars(conn, symbol, period.start, period.end)
    # Averages and crosses look at the days before the range, so compute them first, then cut.
    bars["avg_volume_20"] = analysis.average_volume_before(bars["volume"])
    in_range = bars.loc[pd.Timestamp(period.start) : pd.Timestamp(period.end)]
    starts = pd.Timestamp(period.start)
    crosses = analysis.crosses(bars["sma_50"], bars["sma_200"])
    crosses = crosses[crosses["trade_date"] >= starts]
    spikes = analysis.volume_spikes(bars["volume"])
    spikes = spikes[spikes["trade_date"] >= starts]
    meta = {
        "name": _text(info["security_name"]),
        "asset_type": _text(info["asset_type"]),
        "exchange": _text(info["listing_exchange"]),
        "first_trade_date": info["first_trade_date"],
        "last_trade_date": info["last_trade_date"],
        "trading_days": info["trading_days"],
    }
    summary: dict[str, Any] = {
        "symbol": symbol,
        "href": pages.page_name(symbol),
        **{k: meta[k] for k in ("name", "asset_type", "first_trade_date", "last_trade_date", "trading_days")},
        "last_close": None,
        "last_close_date": None,
        "total_return": None,
        "volatility": None,
        "max_drawdown": None,
        "avg_volume": None,
    }
    context: dict[str, Any] = {"symbol": symbol, "info": meta, "range_text": period.text, "stats": None}
    if in_range.empty:
        log.warning("%s has no trading days in %s", symbol, period.text)
        context["charts"] = {}
        return context, summary

    stats = analysis.return_stats(in_range["adj_close"])
    # The mart computes each indicator over the whole history, so the range alone is read.
    # A left join: a bar the indicators' view lacks keeps its candle, with gaps in the panels.
    indicators = data.daily_indicators(conn, symbol, period.start, period.end)
    in_range = in_range.join(indicators, how="left")
    periods = data.period_averages(conn, symbol, period.start, period.end)
    day_returns = bars["adj_close"].pct_change(fill_method=None)
    top_spikes = spikes.nlargest(TOP_SPIKES, "ratio").assign(
        day_return=lambda f: day_returns.reindex(pd.DatetimeIndex(f["trade_date"])).to_numpy()
    )
    last = in_range.iloc[-1]
    context.update(
        stats=stats,
        last_close=last["close"],
        last_close_date=in_range.index[-1],
        crosses=crosses.to_dict("records"),
        golden_count=int((crosses["kind"] == "golden").sum()),
        death_count=int((crosses["kind"] == "death").sum()),
        spikes=spikes.to_dict("records"),
        top_spikes=top_spikes.to_dict("records"),
        spike_ratio=f"{analysis.SPIKE_RATIO:g}",
        period_tables=[
            (
                name,
                [
                    {**r, "label": formatting.period_label(r["period_start"], name)}
                    for r in frame.sort_values("period_start", ascending=False).to_dict("records")
                ],
            )
            for name, frame in reversed(periods.items())
        ],
        charts={
            "prices": charts.to_div(
                charts.price_chart(symbol, in_range, crosses, spikes, period.text), "chart-prices"
            ),
            "returns": charts.to_div(
                charts.returns_chart(symbol, in_range["adj_close"], stats, period.text), "chart-returns"
            ),
            "periods": charts.to_div(charts.period_chart(symbol, periods, period.text), "chart-periods"),
        },
    )
    summary.update(
        last_close=last["close"],
        last_close_date=in_range.index[-1],
        total_return=stats.total_return,
        volatility=stats.annualised_volatility,
        max_drawdown=stats.max_drawdown.depth if stats.max_drawdown else 0.0,
        avg_volume=float(in_range["volume"].mean()),
    )
    return context, summary


def _overview(
    conn: psycopg2.extensions.connection,
    symbols: list[str],
    rows: list[dict[str, Any]],
    period: Range,
    selection: str,
) -> dict[str, Any]:
    closes = data.adj_closes(conn, symbols, period.start, period.end)
    movers = analysis.movers(closes)
    movers["href"] = movers["symbol"].map(pages.page_name)
    chosen = symbols[:MAX_CORRELATION_SYMBOLS]
    correlation = analysis.correlation_matrix(closes[sorted(chosen)])
    note = ""
    if len(symbols) > MAX_CORRELATION_SYMBOLS:
        note = f"the first {MAX_CORRELATION_SYMBOLS} of the report's {len(symbols)} symbols"
    records = movers.to_dict("records")
    figures = {}
    if len(movers):
        figures["movers"] = charts.to_div(
            charts.movers_chart(movers, period.start, period.text), "chart-movers"
        )
    if correlation.notna().to_numpy().sum() > len(correlation):  # a pair, not just the diagonal
        figures["correlation"] = charts.to_div(
            charts.correlation_chart(correlation, period.text), "chart-correlation"
        )
    return {
        "range_text": period.text,
        "selection": selection,
        "symbols": rows,
        "gainers": [m for m in records if m["total_return"] > 0][:TOP_MOVERS],
        "losers": [m for m in reversed(records) if m["total_return"] < 0][:TOP_MOVERS],
        "correlation_note": note,
        "min_correlation_days": analysis.MIN_CORRELATION_DAYS,
        "charts": figures,
    }


def _text(value: Any) -> str:
    """A metadata text, or "" where it is unknown (None, or pandas' NaN once a column mixes them:
    most symbols of a real universe have no metadata row)."""
    return "" if value is None or pd.isna(value) else str(value)
