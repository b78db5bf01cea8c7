"""Plotly figures for the report; every chart has a title, labelled axes with units and a legend.

The figures are written as <div>s that draw themselves with plotly.js, which the pages load
from one shared file beside them (assets/plotly.min.js): nothing is fetched from a network.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from report import analysis, formatting

# Colours a person tells apart, and that keep their meaning across charts.
UP, DOWN = "#1a9850", "#d73027"
SMA_COLOURS = {"sma_20": "#ff7f0e", "sma_50": "#1f77b4", "sma_200": "#7b3294"}
VOLUME, SPIKE, AVERAGE = "#9aa5b1", "#e66101", "#333333"
GOLDEN, DEATH = "#d4a017", "#000000"
BOLLINGER, BOLLINGER_FILL = "#4a6f94", "rgba(74, 111, 148, 0.10)"
INDICATOR_LINE, MACD_SIGNAL = "#1f4e9c", "#e08214"
RSI_OVERBOUGHT, RSI_OVERSOLD = 70, 30  # Wilder's levels
# The trading day of a history on which the mart's first value appears (docs/indicators.md).
BOLLINGER_FIRST_DAY, RSI_FIRST_DAY, MACD_FIRST_DAY = 20, 15, 34
# Legend names of the mart's columns (the tests find the traces by them).
INDICATOR_NAMES = {
    "bollinger_upper": "Bollinger upper (SMA 20 + 2 std. dev.)",
    "bollinger_lower": "Bollinger lower (SMA 20 - 2 std. dev.)",
    "rsi_14": "RSI 14 (Wilder, of the close)",
    "macd": "MACD (EMA 12 - EMA 26)",
    "macd_signal": "Signal (EMA 9 of MACD)",
    "macd_histogram_up": "Histogram ≥ 0 (MACD above signal)",
    "macd_histogram_down": "Histogram < 0 (MACD below signal)",
}
# The daily chart's panels, top to bottom: candles, volume, RSI, MACD (fractions of the plot).
PANEL_HEIGHTS = [0.5, 0.14, 0.16, 0.2]
PANEL_SPACING = 0.045  # room between panels for each one's legend
OUTLINE = {"color": "white", "width": 1}  # markers stay visible on top of lines
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# The modebar keeps zoom, pan and PNG export. "Share chart" would upload the data to plotly's
# server, so it goes, with the server URL and the logo link: nothing points off the machine.
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "scrollZoom": False,
    "plotlyServerURL": "",
    "modeBarButtonsToRemove": ["sendChartToCloud", "sendDataToCloud", "select2d", "lasso2d"],
}
RANGE_BUTTONS = [
    {"count": 1, "label": "1M", "step": "month", "stepmode": "backward"},
    {"count": 3, "label": "3M", "step": "month", "stepmode": "backward"},
    {"count": 6, "label": "6M", "step": "month", "stepmode": "backward"},
    {"count": 1, "label": "YTD", "step": "year", "stepmode": "todate"},
    {"count": 1, "label": "1Y", "step": "year", "stepmode": "backward"},
    {"label": "All", "step": "all"},
]
# The default template, not a per-figure one: plotly validates a template named in a layout
# again for every figure (0.1 s each, a quarter of the report's CPU time).
pio.templates.default = "plotly_white"
WEEKENDS = [{"bounds": ["sat", "mon"]}]  # no empty gap every weekend (holidays stay as gaps)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        # Pinned to the top edge: the room under it (margin t) is for the legend and buttons.
        title={
            "text": title,
            "x": 0.01,
            "xanchor": "left",
            "yref": "container",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 14},
            "font": {"size": 18},
        },
        height=height,
        font={"family": FONT, "size": 13},
        margin={"l": 80, "r": 30, "t": 90, "b": 60},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom", "font": {"size": 12}},
        hoverlabel={"font": {"family": FONT}},
    )
    return fig


def _dates(index: pd.Index) -> list[str]:
    # ISO dates, not timestamps: a third of the bytes and no time-of-day in hovers.
    return [d.strftime("%Y-%m-%d") for d in pd.DatetimeIndex(index)]


def _series_name(label: str, series: pd.Series, days: int) -> str:
    """label, or why the line is missing: an indicator is null until its window is full."""
    return label if series.notna().any() else f"{label.split(' (', maxsplit=1)[0]}: under {days} days of data"


def price_chart(
    symbol: str, bars: pd.DataFrame, crosses: pd.DataFrame, spikes: pd.DataFrame, title_range: str
) -> go.Figure:
    """Candles with Bollinger bands, SMA 20/50/200 and crosses; beneath, volume, RSI 14 and MACD.

    bars holds the daily bars, avg_volume_20 and the columns of data.INDICATORS. The four panels
    share one x axis, so zooming one zooms all; each has its legend above it.
    """
    x = _dates(bars.index)
    fig = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        row_heights=PANEL_HEIGHTS,
        vertical_spacing=PANEL_SPACING,
    )
    # A candle needs all four prices (Plotly draws a bar without one as a broken path); a day
    # whose open, high or low is not recorded (a zero open is Yahoo's "no open") shows its close.
    whole = bars[["open", "high", "low", "close"]].notna().all(axis=1) & (bars["open"] > 0)
    candles = bars[whole]
    fig.add_trace(
        go.Candlestick(
            x=_dates(candles.index),
            open=candles["open"],
            high=candles["high"],
            low=candles["low"],
            close=candles["close"],
            name="Daily bar (open, high, low, close)",
            increasing={"line": {"color": UP, "width": 1}, "fillcolor": UP},
            decreasing={"line": {"color": DOWN, "width": 1}, "fillcolor": DOWN},
        ),
        row=1,
        col=1,
    )
    close_only = bars[~whole & bars["close"].notna()]
    if len(close_only):
        fig.add_trace(
            go.Scatter(
                x=_dates(close_only.index),
                y=close_only["close"],
                mode="markers",
                name="Close of a day without a whole bar (open, high or low not recorded)",
                marker={
                    "symbol": "line-ew",
                    "size": 12,
                    "color": AVERAGE,
                    "line": {"width": 2, "color": AVERAGE},
                },
                hovertemplate="close %{y:,.2f} USD (no whole bar)",
            ),
            row=1,
            col=1,
        )
    # The lower band right after the upper one: "tonexty" fills to the trace added just before.
    # The middle band is SMA 20, drawn once, below, as the SMA line.
    for column, fill in (("bollinger_upper", None), ("bollinger_lower", "tonexty")):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=bars[column],
                name=_series_name(INDICATOR_NAMES[column], bars[column], BOLLINGER_FIRST_DAY),
                line={"color": BOLLINGER, "width": 1, "dash": "dot"},
                fill=fill,
                fillcolor=BOLLINGER_FILL,
                hovertemplate="%{y:,.2f} USD",
            ),
            row=1,
            col=1,
        )
    for column, colour in SMA_COLOURS.items():
        days = column.removeprefix("sma_")
        middle = "; Bollinger middle" if days == "20" else ""
        fig.add_trace(
            go.Scatter(
                x=x,
                y=bars[column],
                name=_series_name(f"SMA {days} (close, {days} days{middle})", bars[column], int(days)),
                line={"color": colour, "width": 1.6},
                hovertemplate="%{y:,.2f} USD",
            ),
            row=1,
            col=1,
        )
    for kind, colour, symbol_shape, label in (
        ("golden", GOLDEN, "triangle-up", "Golden cross (SMA 50 above SMA 200)"),
        ("death", DEATH, "triangle-down", "Death cross (SMA 50 below SMA 200)"),
    ):
        found = crosses[crosses["kind"] == kind]
        if len(found):
            fig.add_trace(
                go.Scatter(
                    x=_dates(pd.DatetimeIndex(found["trade_date"])),
                    y=found["sma_slow"],
                    mode="markers",
                    name=label,
                    marker={"symbol": symbol_shape, "size": 15, "color": colour, "line": OUTLINE},
                    hovertemplate=f"{kind.title()} cross<br>SMA 200 %{{y:,.2f}} USD<extra></extra>",
                ),
                row=1,
                col=1,
            )
    spike_days = set(pd.DatetimeIndex(spikes["trade_date"])) if len(spikes) else set()
    is_spike = np.array([d in spike_days for d in bars.index], dtype=bool)
    volume_panel = {"row": 2, "col": 1}
    fig.add_trace(
        go.Bar(
            x=x,
            y=bars["volume"].where(~is_spike),
            name="Volume",
            marker={"color": VOLUME, "line": {"width": 0}},
            hovertemplate="%{y:,.0f} shares",
            legend="legend2",
        ),
        **volume_panel,
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=bars["volume"].where(is_spike),
            name=f"Volume spike (≥ {analysis.SPIKE_RATIO:g}{formatting.TIMES} the 20-day average)",
            marker={"color": SPIKE, "line": {"width": 0}},
            hovertemplate="%{y:,.0f} shares (spike)",
            legend="legend2",
        ),
        **volume_panel,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=bars["avg_volume_20"],
            name="Average volume of the 20 days before",
            line={"color": AVERAGE, "width": 1.2},
            hovertemplate="%{y:,.0f} shares (20-day average)",
            legend="legend2",
        ),
        **volume_panel,
    )
    _rsi_panel(fig, x, bars["rsi_14"], row=3)
    _macd_panel(fig, x, bars, row=4)
    _layout(fig, f"{symbol}: daily prices, volume, RSI and MACD, {title_range}", 1120)
    fig.update_layout(barmode="overlay", bargap=0.1, hovermode="x unified")
    # One legend per panel, just above it: a single legend of 15 entries would wrap into the
    # title, and a reader looks for a panel's key beside the panel.
    panel_legend = {
        "orientation": "h",
        "x": 0,
        "yanchor": "bottom",
        "font": {"size": 12},
        "traceorder": "normal",
    }
    fig.update_layout(legend={"traceorder": "normal"})  # the band's fill would reverse it
    for row, name in ((2, "legend2"), (3, "legend3"), (4, "legend4")):
        top = fig.get_subplot(row, 1).yaxis.domain[1]
        fig.update_layout({name: {**panel_legend, "y": top}})
    fig.update_xaxes(rangebreaks=WEEKENDS, showspikes=True, spikemode="across", spikethickness=1)
    fig.update_xaxes(
        rangeslider_visible=False,
        rangeselector={"buttons": RANGE_BUTTONS, "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text="Trading day", row=4, col=1)
    fig.update_yaxes(title_text="Price (USD)", tickformat=",.2f", row=1, col=1)
    fig.update_yaxes(title_text="Volume (shares)", exponentformat="B", row=2, col=1)
    fig.update_layout(margin={"t": 125})
    return fig


def _rsi_panel(fig: go.Figure, x: list[str], rsi: pd.Series, row: int) -> None:
    """RSI 14 on a fixed 0-100 scale, with the 70 (overbought) and 30 (oversold) guide lines."""
    fig.add_trace(
        go.Scatter(
            x=x,
            y=rsi,
            name=_series_name(INDICATOR_NAMES["rsi_14"], rsi, RSI_FIRST_DAY),
            line={"color": INDICATOR_LINE, "width": 1.4},
            hovertemplate="RSI %{y:.1f}",
            legend="legend3",
        ),
        row=row,
        col=1,
    )
    # Traces, not shapes, so the legend names them; two points span the panel, no hover.
    for level, colour, label in (
        (RSI_OVERBOUGHT, DOWN, f"Overbought ({RSI_OVERBOUGHT})"),
        (RSI_OVERSOLD, UP, f"Oversold ({RSI_OVERSOLD})"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[x[0], x[-1]],
                y=[level, level],
                mode="lines",
                name=label,
                line={"color": colour, "width": 1, "dash": "dash"},
                hoverinfo="skip",
                legend="legend3",
            ),
            row=row,
            col=1,
        )
    if rsi.isna().all():
        _empty_panel(fig, f"No RSI yet: it needs {RSI_FIRST_DAY} trading days of data", row)
    fig.update_yaxes(
        title_text="RSI 14",
        range=[0, 100],
        tickvals=[0, RSI_OVERSOLD, 50, RSI_OVERBOUGHT, 100],
        row=row,
        col=1,
    )


def _empty_panel(fig: go.Figure, text: str, row: int) -> None:
    """Say in the panel why it is blank (a short history), not only in its legend."""
    fig.add_annotation(
        text=text,
        xref="x domain",
        yref="y domain",
        x=0.5,
        y=0.5,
        showarrow=False,
        font={"size": 14, "color": "#52606d"},
        row=row,
        col=1,
    )


def _macd_panel(fig: go.Figure, x: list[str], bars: pd.DataFrame, row: int) -> None:
    """MACD (12, 26, 9): the histogram as bars (green above zero), the MACD and signal lines."""
    histogram = bars["macd_histogram"]
    # Two traces, not one of two colours: the legend then says what green and red mean.
    for name, colour, part in (
        ("macd_histogram_up", UP, histogram.where(histogram >= 0)),
        ("macd_histogram_down", DOWN, histogram.where(histogram < 0)),
    ):
        fig.add_trace(
            go.Bar(
                x=x,
                y=part,
                name=_series_name(INDICATOR_NAMES[name], histogram, MACD_FIRST_DAY),
                marker={"color": colour, "opacity": 0.55, "line": {"width": 0}},
                hovertemplate="histogram %{y:+,.2f}",
                legend="legend4",
            ),
            row=row,
            col=1,
        )
    for column, colour, short in (("macd", INDICATOR_LINE, "MACD"), ("macd_signal", MACD_SIGNAL, "signal")):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=bars[column],
                name=_series_name(INDICATOR_NAMES[column], bars[column], MACD_FIRST_DAY),
                line={"color": colour, "width": 1.4},
                hovertemplate=f"{short} %{{y:+,.2f}}",
                legend="legend4",
            ),
            row=row,
            col=1,
        )
    if bars["macd"].isna().all():
        _empty_panel(fig, f"No MACD yet: it needs {MACD_FIRST_DAY} trading days of data", row)
    fig.update_yaxes(
        title_text="MACD (USD)", tickformat=",.2f", zeroline=True, zerolinecolor="#888888", row=row, col=1
    )


def returns_chart(
    symbol: str, adj_close: pd.Series, stats: analysis.ReturnStats, title_range: str
) -> go.Figure:
    """Cumulative return, daily returns and drawdown from adj_close, the max drawdown marked."""
    series = adj_close.dropna()
    returns = analysis.daily_returns(series)
    under = analysis.drawdowns(series)
    x = _dates(series.index)
    fig = make_subplots(
        rows=3, cols=1, shared_xaxes=True, row_heights=[0.45, 0.27, 0.28], vertical_spacing=0.05
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=(series / series.iloc[0] - 1) * 100,
            name="Cumulative return since the range's first day",
            line={"color": "#1f77b4", "width": 1.8},
            hovertemplate="%{y:+,.2f} %",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=_dates(returns.index),
            y=returns * 100,
            name="Daily return",
            marker={"color": np.where(returns >= 0, UP, DOWN), "line": {"width": 0}},
            hovertemplate="%{y:+,.2f} %",
        ),
        row=2,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=under * 100,
            name="Drawdown from the running peak",
            fill="tozeroy",
            line={"color": DOWN, "width": 1},
            fillcolor="rgba(215, 48, 39, 0.25)",
            hovertemplate="%{y:,.2f} %",
        ),
        row=3,
        col=1,
    )
    worst = stats.max_drawdown
    if worst is not None:
        peak, trough = formatting.day(worst.peak_date), formatting.day(worst.trough_date)
        fall = formatting.percent(worst.depth)
        for when, depth, shape, label in (
            (worst.peak_date, 0.0, "diamond", f"Peak before the max drawdown ({peak})"),
            (worst.trough_date, worst.depth, "triangle-up", f"Trough: max drawdown {fall} ({trough})"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=[formatting.day(when)],
                    y=[depth * 100],
                    mode="markers",
                    name=label,
                    marker={"color": "#000000", "size": 11, "symbol": shape, "line": OUTLINE},
                    hovertemplate=f"{label}<extra></extra>",
                    cliponaxis=False,
                ),
                row=3,
                col=1,
            )
    _layout(fig, f"{symbol}: returns and drawdown from adjusted close, {title_range}", 760)
    fig.update_layout(hovermode="x unified", bargap=0)
    fig.update_xaxes(rangebreaks=WEEKENDS)
    fig.update_xaxes(title_text="Trading day", row=3, col=1)
    fig.update_yaxes(title_text="Cumulative return (%)", ticksuffix=" %", row=1, col=1)
    fig.update_yaxes(title_text="Daily return (%)", ticksuffix=" %", row=2, col=1)
    fig.update_yaxes(title_text="Drawdown (%)", ticksuffix=" %", row=3, col=1)
    return fig


PERIOD_NAMES = {"weekly": "Weekly", "monthly": "Monthly", "quarterly": "Quarterly", "yearly": "Yearly"}
PERIOD_SPANS = {"weekly": 7 * 24 * 3600 * 1000, "monthly": "M1", "quarterly": "M3", "yearly": "M12"}
DEFAULT_PERIOD = "monthly"


def period_chart(symbol: str, periods: dict[str, pd.DataFrame], title_range: str) -> go.Figure:
    """Average high and low (a band) and average daily volume per period; buttons pick the period."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    per_period = 3  # traces each period adds, in this order
    for period, frame in periods.items():
        visible = period == DEFAULT_PERIOD
        x = _dates(frame["period_start"])
        labels = [formatting.period_label(p, period) for p in frame["period_start"]]
        # Each point spans its period and sits in its middle, so a bar covers its month or week.
        span = {"xperiod": PERIOD_SPANS[period], "xperiodalignment": "middle"}
        fig.add_trace(
            go.Scatter(
                x=x,
                y=frame["avg_high"],
                name="Average high",
                line={"color": UP, "width": 1.8},
                customdata=labels,
                hovertemplate="%{customdata}<br>average high %{y:,.2f} USD<extra></extra>",
                **span,
                visible=visible,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=frame["avg_low"],
                name="Average low",
                line={"color": DOWN, "width": 1.8},
                fill="tonexty",
                fillcolor="rgba(120, 120, 120, 0.15)",
                customdata=labels,
                hovertemplate="%{customdata}<br>average low %{y:,.2f} USD<extra></extra>",
                **span,
                visible=visible,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=x,
                y=frame["avg_volume"],
                name="Average daily volume",
                marker={"color": VOLUME},
                customdata=labels,
                hovertemplate="%{customdata}<br>average volume %{y:,.0f} shares a day<extra></extra>",
                **span,
                visible=visible,
            ),
            row=2,
            col=1,
        )
    names = list(periods)
    buttons = []
    for i, period in enumerate(names):
        visible = [j // per_period == i for j in range(per_period * len(names))]
        buttons.append(
            {
                "label": PERIOD_NAMES[period],
                "method": "update",
                "args": [
                    {"visible": visible},
                    {"title.text": _period_title(symbol, period, title_range)},
                ],
            }
        )
    _layout(fig, _period_title(symbol, DEFAULT_PERIOD, title_range), 600)
    fig.update_layout(
        margin={"t": 95},
        updatemenus=[
            {
                "type": "buttons",
                "direction": "right",
                "buttons": buttons,
                "active": names.index(DEFAULT_PERIOD) if DEFAULT_PERIOD in names else 0,
                "x": 1,
                "xanchor": "right",
                "y": 1.0,
                "yanchor": "bottom",
                "pad": {"b": 4},
                "showactive": True,
            }
        ],
        hovermode="x unified",
        legend={"y": 1.0, "traceorder": "normal"},  # a fill between lines would reverse it
    )
    fig.update_xaxes(title_text="Period", row=2, col=1)
    fig.update_yaxes(title_text="Price (USD)", tickformat=",.2f", row=1, col=1)
    fig.update_yaxes(title_text="Volume (shares/day)", exponentformat="B", row=2, col=1)
    return fig


def _period_title(symbol: str, period: str, title_range: str) -> str:
    return f"{symbol}: {PERIOD_NAMES[period].lower()} average high, low and volume, {title_range}"


def movers_chart(movers: pd.DataFrame, start: date, title_range: str) -> go.Figure:
    """Return over the range per symbol, as horizontal bars from the best to the worst."""
    ordered = movers.sort_values("total_return")  # plotly draws the first bar at the bottom
    fig = go.Figure()
    for label, colour, rows in (
        ("Gain", UP, ordered[ordered["total_return"] >= 0]),
        ("Loss", DOWN, ordered[ordered["total_return"] < 0]),
    ):
        # A symbol that started trading inside the range says so: its return is over less time.
        text = [
            formatting.percent(r.total_return)
            + (f" (from {formatting.day(r.first_date)})" if r.first_date > start else "")
            for r in rows.itertuples()
        ]
        fig.add_trace(
            go.Bar(
                x=rows["total_return"] * 100,
                y=rows["symbol"],
                orientation="h",
                name=label,
                marker={"color": colour},
                text=text,
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{y}: %{x:+,.2f} %<extra></extra>",
            )
        )
    _layout(fig, f"Return over the range (adjusted close), {title_range}", max(360, 26 * len(ordered) + 170))
    # Room either side for the labels written beyond the bars' ends.
    low, high = min(0.0, ordered["total_return"].min() * 100), max(0.0, ordered["total_return"].max() * 100)
    pad = 0.22 * (high - low or 1)
    fig.update_layout(bargap=0.25, margin={"r": 40})
    fig.update_xaxes(
        title_text="Return from first to last trading day in the range (%)",
        ticksuffix=" %",
        range=[low - (pad if low < 0 else 0), high + pad],
        zeroline=True,
        zerolinecolor="#555555",
    )
    fig.update_yaxes(
        title_text="Symbol",
        categoryorder="array",
        categoryarray=ordered["symbol"].tolist(),
        automargin=True,
    )
    return fig


def correlation_chart(corr: pd.DataFrame, title_range: str) -> go.Figure:
    """Heatmap of the correlation of daily returns, -1 (red) to +1 (blue), values written in."""
    symbols = corr.columns.tolist()
    count = len(symbols)
    fig = go.Figure(
        go.Heatmap(
            z=corr.to_numpy(),
            x=symbols,
            y=symbols,
            zmin=-1,
            zmax=1,
            zmid=0,
            colorscale="RdBu",
            texttemplate="%{z:.2f}",
            textfont={"size": 11 if count <= 20 else 9},
            xgap=1,
            ygap=1,
            hovertemplate="%{y} and %{x}: %{z:.2f}<extra></extra>",
            name="Correlation",
            colorbar={"title": {"text": "Correlation<br>(Pearson)", "side": "top"}, "tickformat": ".1f"},
        )
    )
    side = max(420, 34 * count + 180)
    _layout(fig, f"Correlation of daily returns (adjusted close), {title_range}", side)
    fig.update_layout(margin={"t": 60})
    fig.update_xaxes(title_text="Symbol", side="bottom", tickangle=-45, showgrid=False)
    fig.update_yaxes(title_text="Symbol", autorange="reversed", showgrid=False, scaleanchor="x")
    return fig


def to_div(fig: go.Figure, div_id: str) -> str:
    """The figure as an HTML fragment that draws itself with the page's plotly.js."""
    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=CONFIG,
        default_width="100%",
        default_height=f"{fig.layout.height}px",
    )
