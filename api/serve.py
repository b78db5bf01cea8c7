"""Serve the API with uvicorn.

    python -m api [--host 127.0.0.1] [--port $API_PORT or 8000] [--workers 1]
    python api/serve.py ...

The database is the one the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE)
name; run it as the read-only role: eval "$(bash scripts/db.sh env reader)".
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from api.settings import Settings, SettingsError

LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def log_config(level: str) -> dict:
    """uvicorn's log config (it applies it in every worker process too)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"level": level},
            "psycopg.pool": {"level": "WARNING"},  # its INFO is one line per connection checkout
        },
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m api", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $API_PORT, else 8000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: %(default)s)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default: info)"
    )
    parser.add_argument("--no-access-log", action="store_true", help="leave out the per-request log lines")
    args = parser.parse_args(argv)
    if args.port is None:
        raw = os.environ.get("API_PORT", "8000")
        if not raw.isdigit():
            parser.error(f"API_PORT={raw!r} is not a port number")
        args.port = int(raw)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: not a TCP port")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        Settings.from_env()  # refuse bad API_* settings here, once, not in every worker
    except SettingsError as exc:
        print(f"api: {exc}", file=sys.stderr)
        return 2
    config = log_config(args.log_level.upper())
    if args.no_access_log:
        config["loggers"]["api.access"] = {"level": "WARNING"}
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,  # api.access logs each request with its latency instead
        log_config=config,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
