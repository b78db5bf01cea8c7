"""The feed's message format: one JSON object per bar, independent of any broker client.

    {"v": 1, "symbol": "AAPL", "date": "2024-05-17", "revision": 0,
     "open": "189.51", "high": "190.81", "low": "189.18", "close": "189.87",
     "adj_close": "189.87", "volume": "41282900"}

Values travel as text, exactly as they will sit in the raw layer (null: missing). Decoding checks
the structure and that every value is a finite number; range rules (a negative price, High < Low)
belong to staging, as for file rows. Extra keys are tolerated so that a newer producer can add
fields; the layout version `v` is not.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1
PRICE_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")
REQUIRED_KEYS = ("symbol", "date", "revision", "close")
MAX_REVISION = 2**31 - 1
REQUIRED = frozenset(REQUIRED_KEYS)
MAX_SYMBOL_LENGTH = 32
SYMBOL = re.compile(rf"\S{{1,{MAX_SYMBOL_LENGTH}}}")
QUOTE_CHARS = 40
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DIGITS = re.compile(r"^\d+$")
# A decimal number as PostgreSQL reads one (float() alone would also take '1_000' and 'inf').
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# A NATS subject token may hold neither '.', '*', '>' nor whitespace; keep a safe, readable set.
SUBJECT_SAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Bar:
    """A symbol's daily bar; `revision` orders the versions of one (symbol, date), highest wins."""

    symbol: str
    trade_date: datetime.date
    revision: int
    open: str | None
    high: str | None
    low: str | None
    close: str | None
    adj_close: str | None
    volume: str | None


class BadMessage(ValueError):
    """A message that cannot be a bar; `reason_code` is stable, `reason` is for people."""

    def __init__(self, reason_code: str, reason: str) -> None:
        super().__init__(f"{reason_code}: {reason}")
        self.reason_code = reason_code
        self.reason = reason


def quote(value: object) -> str:
    """The offending value for a reason sentence, cut to a readable length."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text) if len(text) <= QUOTE_CHARS else repr(text[:QUOTE_CHARS]) + "..."


def encode_bar(bar: Bar) -> bytes:
    values = {name: getattr(bar, name) for name in PRICE_FIELDS}
    return encode_fields(bar.symbol, bar.trade_date.isoformat(), bar.revision, values)


def encode_fields(symbol: str, date_text: str, revision: int, values: dict[str, str | None]) -> bytes:
    """A message from text as a file holds it, the date unchecked: a replayed line whose date is
    not YYYY-MM-DD still travels, and the consumer sets it aside with its reason."""
    body: dict[str, Any] = {"v": SCHEMA_VERSION, "symbol": symbol, "date": date_text, "revision": revision}
    for name in PRICE_FIELDS:
        body[name] = values.get(name)
    return json.dumps(body, separators=(",", ":")).encode()


def message_id(bar: Bar) -> str:
    """The JetStream Nats-Msg-Id: a re-send of the same version inside the window is dropped."""
    return raw_message_id(bar.symbol, bar.trade_date.isoformat(), bar.revision)


def raw_message_id(symbol: str, date_text: str, revision: int) -> str:
    # A header value cannot hold line breaks; other text is fine.
    return " ".join(f"{symbol}:{date_text}:{revision}".splitlines())


def subject_for(symbol: str, prefix: str = "bars") -> str:
    """`bars.<token>`: anything outside [A-Za-z0-9_-] becomes `~XX` (its UTF-8 bytes in hex),
    so 'BRK.B' -> 'bars.BRK~2EB'. Consumers read the symbol from the body, never from here."""
    token = SUBJECT_SAFE.sub(lambda m: "".join(f"~{b:02X}" for b in m.group().encode()), symbol)
    return f"{prefix}.{token or '~'}"


def symbol_of_subject(subject: str) -> str:
    """The symbol a `subject_for` subject was made from (a Kafka message's key is the symbol)."""
    token = subject.split(".", 1)[-1]
    if token == "~":
        return ""
    # Runs of escapes together: a character of several UTF-8 bytes is several `~XX`.
    return re.sub(r"(?:~[0-9A-F]{2})+", lambda m: bytes.fromhex(m.group().replace("~", "")).decode(), token)


def _reject_constant(name: str) -> float:
    raise ValueError(f"JSON constant {name} is not a number")


def _text_value(name: str, value: object) -> str | None:
    """A price or volume as text: numbers become their shortest form, numeric text stays as sent."""
    if type(value) is str:  # the usual case first: this runs six times per message
        text = value.strip()
        if not text:
            return None  # an empty field is missing, as in the CSV files
    elif value is None:
        return None
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise BadMessage("non_finite_price", f"{name} {quote(value)} is not a number.")
    else:
        text = str(value) if isinstance(value, int) else repr(value)
    # Without an exponent, a decimal of fewer than 300 characters is always finite; otherwise
    # float() decides (too large becomes inf; float() of a numeric string never raises).
    if NUMBER.match(text) is None or (
        (len(text) >= 300 or "e" in text or "E" in text) and not math.isfinite(float(text))
    ):
        raise BadMessage("non_finite_price", f"{name} {quote(value)} is not a finite number.")
    return text


def decode_bar(payload: bytes) -> Bar:
    """Parse one message; anything that cannot be a bar raises BadMessage with its reason."""
    try:
        body = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise BadMessage("unparseable_message", f"not UTF-8 text (byte {exc.start}).") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError, so is a NaN constant
        raise BadMessage("unparseable_message", f"not JSON: {quote(str(exc))}.") from None
    if not isinstance(body, dict):
        raise BadMessage("unparseable_message", f"a JSON {type(body).__name__}, not an object.")

    version = body.get("v")
    if "v" not in body:
        raise BadMessage("unknown_layout", "no layout version 'v'.")
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise BadMessage("unknown_layout", f"layout version {quote(version)}; this consumer reads v=1.")
    if not body.keys() >= REQUIRED:
        missing = [key for key in REQUIRED_KEYS if key not in body]
        raise BadMessage("missing_field", f"no {', '.join(repr(k) for k in missing)} in the message.")

    symbol = body["symbol"]
    if not isinstance(symbol, str) or SYMBOL.fullmatch(symbol) is None:
        raise BadMessage(
            "bad_symbol",
            f"symbol {quote(symbol)} is not 1 to {MAX_SYMBOL_LENGTH} characters without spaces.",
        )

    raw_date = body["date"]
    trade_date = None
    if isinstance(raw_date, str) and ISO_DATE.match(raw_date):
        try:
            trade_date = datetime.date.fromisoformat(raw_date)
        except ValueError:
            trade_date = None
    if trade_date is None:
        raise BadMessage("unparseable_date", f"date {quote(raw_date)} is not a YYYY-MM-DD calendar date.")

    raw_revision = body["revision"]
    revision: int | None = None
    if isinstance(raw_revision, int) and not isinstance(raw_revision, bool):
        revision = raw_revision
    elif isinstance(raw_revision, str) and DIGITS.match(raw_revision.strip()):
        revision = int(raw_revision.strip())
    if revision is None or revision < 0:
        raise BadMessage("bad_revision", f"revision {quote(raw_revision)} is not a whole number >= 0.")
    if revision > MAX_REVISION:  # the warehouse keeps it in an integer column
        raise BadMessage("bad_revision", f"revision {quote(raw_revision)} is above {MAX_REVISION}.")

    get = body.get
    return Bar(
        symbol,
        trade_date,
        revision,
        _text_value("open", get("open")),
        _text_value("high", get("high")),
        _text_value("low", get("low")),
        _text_value("close", get("close")),
        _text_value("adj_close", get("adj_close")),
        _text_value("volume", get("volume")),
    )
