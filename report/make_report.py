"""Write an HTML report of daily stock prices from the marts: an overview and one page per symbol.

    python report/make_report.py                          # the 30 most traded symbols, last 2 years
    python report/make_report.py --symbols AAPL MSFT --start 2015-01-01
    python report/make_report.py --top 10 --out /tmp/report

Exit codes: 0 written (the path of index.html is printed); 1 could not (database unreachable,
unknown symbol, a mart missing or not readable); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path

from report import build, data

log = logging.getLogger("report")

DEFAULT_TOP = 30
DEFAULT_OUT = Path("target/report")

EPILOG = """\
what it shows:
  index.html: every symbol with its span and last close, top movers over the range, and a
  heatmap of the correlation of daily returns. SYMBOL.html: candles with SMA 20/50/200 and
  Bollinger bands, volume, RSI 14 and MACD panels, golden and death crosses, volume spikes,
  returns, volatility, max drawdown, best and worst days, and the weekly/monthly/quarterly/
  yearly averages (chart and tables).
  The pages open from disk and load nothing from a network (plotly.js is in DIR/assets/).

range:
  Default: the two years up to the last trading day in the data. Symbols are ranked by
  shares traded in the range ("most traded").

connection:
  The libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; the role needs SELECT
  on the marts only (`make report` runs as the reader role).
"""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make_report.py",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--symbols", nargs="+", metavar="SYM", help="these symbols, in this order")
    chosen.add_argument(
        "--top", type=int, metavar="N", help=f"the N most traded symbols in the range (default {DEFAULT_TOP})"
    )
    parser.add_argument(
        "--start", type=_date, metavar="DATE", help="first day (default: 2 years before --end)"
    )
    parser.add_argument("--end", type=_date, metavar="DATE", help="last day (default: the last day of data)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help=f"output folder (default {DEFAULT_OUT})"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is read and written")
    args = parser.parse_args(argv)
    if args.top is not None and args.top < 1:
        parser.error("--top must be at least 1")
    if args.start and args.end and args.start > args.end:
        parser.error(f"--start {args.start} is after --end {args.end}")
    if args.symbols:
        args.symbols = list(dict.fromkeys(s.strip().upper() for s in args.symbols))  # once each
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        conn = data.connect()
        try:
            period = build.default_range(conn, args.start, args.end)
            if args.symbols:
                symbols, selection = args.symbols, "symbols chosen by name"
            else:
                top = args.top or DEFAULT_TOP
                symbols = data.most_traded(conn, top, period.start, period.end)
                selection = f"the {top} most traded symbols (shares traded in the range)"
                if not symbols:
                    raise data.ReportDataError(f"no symbol traded between {period.start} and {period.end}")
            result = build.build_report(conn, symbols, period, args.out, selection=selection)
        finally:
            conn.close()
    except data.ReportDataError as exc:
        print(f"make_report: {exc}", file=sys.stderr)
        return 1
    print(result.index.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
