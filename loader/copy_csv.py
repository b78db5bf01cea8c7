"""Load daily stock price CSVs into PostgreSQL with COPY.

    python loader/copy_csv.py data/sample                  # a Kaggle-layout folder
    python loader/copy_csv.py ~/Downloads/MSFT.csv         # single files (.csv or .csv.gz)
    python loader/copy_csv.py --dry-run data/sample        # validate only, write nothing

Exit codes: 0 everything loaded; 2 finished, but some files or rows were rejected (see the
summary and raw.load_rejects); 1 could not run (bad arguments, database unreachable).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import NoReturn

try:
    from loader import database, history, runner, schema
    from loader.discovery import DiscoveryError, discover
except ModuleNotFoundError as missing:  # run by an interpreter without the project's packages
    # `loader` itself is importable from a script only through the editable install (make venv).
    sys.exit(
        f"copy_csv.py: the Python package '{missing.name}' is not installed for {sys.executable}. "
        "Run `make venv`, then use .venv/bin/python (or `. .venv/bin/activate` first)."
    )

log = logging.getLogger("loader")

EPILOG = """\
what gets loaded:
  A folder in the layout of Kaggle's jacksoncrow/stock-market-dataset (stocks/*.csv,
  etfs/*.csv, symbols_valid_meta.csv), any folder of CSVs, or CSV files named on the
  command line. The symbol is the file name (MSFT.csv -> MSFT); stock or ETF comes from
  the folder (stocks/, etfs/) or, later in dbt, from the symbols metadata.

where it goes (schema raw):
  raw.daily_prices   every accepted line, values as text, with load_id and line_number
  raw.symbols_meta   symbols_valid_meta.csv
  raw.load_rejects   every rejected line: load_id, line_number, raw_line, reason
  raw.load_log       one row per file load: symbol, path, content hash, mode, rows read/
                     loaded/rejected, status (loaded = live, superseded, rejected)
  raw.current_daily_prices  view: per symbol and date, the newest live row, with its file

load modes (the summary counts the files of each; -v logs each file's):
  append   the file's content (a .csv.gz file's, uncompressed) begins with exactly that of
           its symbol's latest load (the daily refresh: each file one line longer): only
           the new lines are loaded.
  merge    the default otherwise: the file's rows supersede the same (symbol, date); dates
           it does not hold are kept. A short or partial file never shrinks a history; a
           re-downloaded full history supersedes every date (and retires the old copy).
  replace  only with --replace: the file becomes the symbol's whole history; the summary
           says how many dates were removed, and which range.
  A file whose content equals its symbol's latest load is skipped as unchanged; one whose
  content was rejected before is reported again (exit 2) without storing anything again.
  Files are committed many to a transaction, each whole, so an interrupted run leaves whole
  files only; run it again. Superseded rows stay in raw (status 'superseded') for
  --keep-superseded days.

connection:
  The libpq variables PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE
  (eval "$(make -s env)" sets them for the project's own database).

exit codes:
  0  everything loaded (or was unchanged)
  2  finished, but some files or rows were rejected: see the log lines and raw.load_rejects
  1  could not run: bad arguments, a path that does not exist, database unreachable
"""


class ArgumentParser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; here 2 means "finished with rejects", so use 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python loader/copy_csv.py",
        description="Load daily stock price CSVs (and the symbols metadata) into the raw schema with COPY.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", metavar="PATH", nargs="+", help="a dataset folder, or .csv / .csv.gz files")
    parser.add_argument("--symbol", help="the symbol of the one price file given (default: its file name)")
    parser.add_argument(
        "--asset-type",
        choices=("stock", "etf"),
        help="stock or ETF for price files whose symbol the metadata does not list (the "
        "metadata's ETF flag wins); default: from the folder",
    )
    parser.add_argument(
        "-j",
        "--workers",
        type=int,
        default=runner.default_workers(),
        help="files loaded in parallel, each in its own process (default: %(default)s, the cores)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read and validate every file and print the summary; connect to nothing, write nothing",
    )
    parser.add_argument(
        "--summary-json",
        type=Path,
        metavar="FILE",
        help="also write the summary as JSON to FILE, for scripts",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="each file becomes its symbol's whole history: dates it does not hold are removed "
        "(default: append or merge, which never remove a date)",
    )
    parser.add_argument(
        "--keep-superseded",
        type=int,
        default=history.DEFAULT_RETENTION_DAYS,
        metavar="DAYS",
        help="days superseded raw rows are kept for audit and undo before they are purged "
        "(default: %(default)s; 0 purges them at the end of this run)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every file")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.keep_superseded < 0:
        parser.error("--keep-superseded must be 0 or more days")
    if args.replace and args.dry_run:
        parser.error("--replace and --dry-run: a dry run writes nothing, so it replaces nothing")
    return args


def log_summary(summary: runner.RunSummary) -> None:
    verb = "would load" if summary.dry_run else "loaded"
    log.info(
        "files: %d seen, %d %s, %d unchanged, %d rejected",
        summary.files_seen,
        summary.files_loaded,
        verb,
        summary.files_unchanged,
        summary.files_rejected,
    )
    log.info(
        "rows:  %s read, %s %s, %s rejected (%s blank lines skipped)",
        f"{summary.rows_read:,}",
        f"{summary.rows_loaded:,}",
        verb,
        f"{summary.rows_rejected:,}",
        f"{summary.blank_lines:,}",
    )
    if summary.files_by_mode:
        modes = ", ".join(f"{n} {mode}" for mode, n in sorted(summary.files_by_mode.items()))
        log.info("modes: %s", modes)
    if summary.files_already_rejected:
        log.info(
            "%d of the rejected files were rejected before with the same content: nothing stored again",
            summary.files_already_rejected,
        )
    for replaced in summary.replaced_histories:
        if replaced["rows_removed"]:
            log.warning(
                "replace: %s lost %s dates (%s to %s) that the new file does not hold",
                replaced["symbol"],
                f"{replaced['rows_removed']:,}",
                replaced["removed_first_date"],
                replaced["removed_last_date"],
            )
        else:
            log.info("replace: %s lost no dates", replaced["symbol"])
    if summary.loads_superseded:
        log.info("superseded: %d earlier loads whose every row a new load holds", summary.loads_superseded)
    log.info("time:  %.1f s, %s rows/s", summary.wall_seconds, f"{summary.rows_per_second:,.0f}")
    if summary.files_loaded == 0 and summary.files_unchanged and not summary.dry_run:
        log.info("nothing new: every file is unchanged since its last load (0 rows loaded)")
    if summary.exit_code:
        log.warning(
            "some input was rejected: see the lines above, and query "
            "raw.load_rejects (row by row) and raw.load_log (file by file, error column)"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        sources = discover(args.paths, symbol=args.symbol, asset_type=args.asset_type)
        summary = runner.run(
            sources,
            workers=args.workers,
            dry_run=args.dry_run,
            replace=args.replace,
            retention_days=args.keep_superseded,
        )
    except (DiscoveryError, database.DatabaseUnavailable, runner.WorkerCrashed, schema.SchemaError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted: files already committed stay loaded; re-run to finish the rest")
        return 1
    log_summary(summary)
    if args.summary_json:
        summary.write_json(args.summary_json)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
