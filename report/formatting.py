"""Numbers and dates as a person reads them: thousands separators, 2 decimals for prices."""

from __future__ import annotations

import math
from datetime import date, datetime

import pandas as pd

MISSING = "\u2013"  # an en dash: shown for a value that does not exist (not for zero)
TIMES = "\u00d7"  # the multiplication sign, for "2.4x the average"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT


def price(value: float | None) -> str:
    """1234.5 -> '1,234.50'."""
    return MISSING if _missing(value) else f"{value:,.2f}"


def integer(value: float | None) -> str:
    """12345678.4 -> '12,345,678' (volumes, counts)."""
    return MISSING if _missing(value) else f"{round(value):,}"


def compact(value: float | None) -> str:
    """Large counts in words a person scans: 12,345,678 -> '12.3 M', 4.2e9 -> '4.20 B'."""
    if _missing(value):
        return MISSING
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            scaled = value / limit
            return f"{scaled:,.2f} {suffix}" if abs(scaled) < 10 else f"{scaled:,.1f} {suffix}"
    return f"{value:,.0f}"


def percent(value: float | None, signed: bool = True) -> str:
    """A fraction as a percentage: 0.1234 -> '+12.34 %' (or '12.34 %' unsigned)."""
    if _missing(value):
        return MISSING
    return f"{value * 100:+,.2f} %" if signed else f"{value * 100:,.2f} %"


def ratio(value: float | None) -> str:
    """2.345 -> '2.3' and a multiplication sign (a multiple of an average)."""
    return MISSING if _missing(value) else f"{value:,.1f}{TIMES}"


def day(value: date | datetime | pd.Timestamp | None) -> str:
    """A date as ISO 8601 (2020-03-16): unambiguous in every locale."""
    if _missing(value):
        return MISSING
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def period_label(value: date | pd.Timestamp, period: str) -> str:
    """A period by its name: 'week of 2020-03-16', 'Mar 2020', '2020 Q1', '2020'."""
    stamp = pd.Timestamp(value)
    if period == "weekly":
        return f"week of {stamp:%Y-%m-%d}"
    if period == "monthly":
        return f"{stamp:%b %Y}"
    if period == "quarterly":
        return f"{stamp.year} Q{stamp.quarter}"
    return f"{stamp.year}"


def span(days: float) -> str:
    """A length in calendar days as years and months: 800 -> '2 y 2 m'."""
    months = round(days / 30.4375)
    years, months = divmod(months, 12)
    if years and months:
        return f"{years} y {months} m"
    return f"{years} y" if years else f"{months} m"
