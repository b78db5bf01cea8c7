"""Where the project's pieces are, and what a build makes."""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
SAMPLE_DIR = PROJECT_DIR / "data" / "sample"
LOADER = PROJECT_DIR / "loader" / "copy_csv.py"
DBT = Path(sys.executable).with_name("dbt")
GRANT_ROLES_SQL = PROJECT_DIR / "scripts" / "sql" / "grant_roles.sql"
COMPONENT_ROLES = ("loader", "transformer", "reader", "streamer")
# Every mart: what the reader role reads, and the report and the API serve.
MARTS = (
    "fct_daily_prices",
    "fct_daily_moving_averages",
    "fct_daily_indicators",
    "fct_latest_day",
    "fct_price_averages_weekly",
    "fct_price_averages_monthly",
    "fct_price_averages_quarterly",
    "fct_price_averages_yearly",
    "dim_symbols",
)
