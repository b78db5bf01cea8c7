"""Write seeds/nyse_trading_sessions.csv: every NYSE trading session from 1962 to 2027.

Made once and committed; regenerate to extend the range (LAST_DAY) before prices reach its
end: the dbt test stg_prices_within_calendar warns, naming the symbols and dates, when they
have. pandas_market_calendars is not a runtime dependency; install it for this script only:

    .venv/bin/pip install pandas-market-calendars==5.5.0
    .venv/bin/python scripts/generate_nyse_calendar.py

pandas_market_calendars models NYSE's historical holidays and special closings (the 1968
Wednesday closings, 9/11, presidential funerals, ...); checked against the bundled sample, it
leaves no false gaps in 60 years of CAT, BA, DIS, ED and CVX. exchange_calendars was tried
first and lists most 1960s holidays (1962-07-04, for one) as sessions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pandas_market_calendars as market_calendars

FIRST_DAY, LAST_DAY = "1962-01-01", "2027-12-31"
OUT = Path(__file__).resolve().parents[1] / "seeds" / "nyse_trading_sessions.csv"


def main() -> int:
    sessions = market_calendars.get_calendar("NYSE").valid_days(start_date=FIRST_DAY, end_date=LAST_DAY)
    dates = pd.DatetimeIndex(sessions).tz_localize(None).strftime("%Y-%m-%d")
    OUT.write_text("session_date\n" + "\n".join(dates) + "\n")
    print(f"{OUT}: {len(dates)} sessions, {dates[0]} to {dates[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
