"""The feed's message format: round trips, subjects, and every reason a message is set aside."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from stream.messages import (
    SCHEMA_VERSION,
    BadMessage,
    Bar,
    decode_bar,
    encode_bar,
    message_id,
    subject_for,
    symbol_of_subject,
)

BAR = Bar(
    symbol="BRK.B",
    trade_date=datetime.date(2024, 5, 17),
    revision=2,
    open="410.5",
    high="412.25",
    low="409.0",
    close="411.75",
    adj_close=None,
    volume="3300100",
)
GOOD = {"v": 1, "symbol": "AAPL", "date": "2024-05-17", "revision": 0, "close": "189.87"}


def payload(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not DROP}).encode()


DROP = object()


def test_round_trip_keeps_text_and_nulls():
    encoded = encode_bar(BAR)
    assert json.loads(encoded) == {
        "v": SCHEMA_VERSION,
        "symbol": "BRK.B",
        "date": "2024-05-17",
        "revision": 2,
        "open": "410.5",
        "high": "412.25",
        "low": "409.0",
        "close": "411.75",
        "adj_close": None,
        "volume": "3300100",
    }
    assert decode_bar(encoded) == BAR
    assert message_id(BAR) == "BRK.B:2024-05-17:2"


def test_lenient_where_the_data_allows_it():
    bar = decode_bar(payload(revision="3", open=12, high=12.5, low=" 11.75 ", volume="", extra="ignored"))
    assert (bar.revision, bar.open, bar.high, bar.low, bar.volume) == (3, "12", "12.5", "11.75", None)
    assert (bar.adj_close, bar.close) == (None, "189.87")  # absent optional field: missing
    assert decode_bar(payload(close="-1.5e3")).close == "-1.5e3"  # ranges are staging's job
    assert decode_bar(payload(close=None)).close is None  # the key is there, the value missing


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\xff\xfe{}", "unparseable_message"),
        (b"{not json", "unparseable_message"),
        (b"[1, 2]", "unparseable_message"),
        (
            b'{"v": 1, "symbol": "A", "date": "2024-01-02", "revision": 0, "close": NaN}',
            "unparseable_message",
        ),
        (payload(v=DROP), "unknown_layout"),
        (payload(v=2), "unknown_layout"),
        (payload(v="1"), "unknown_layout"),
        (payload(v=True), "unknown_layout"),
        (payload(symbol=DROP), "missing_field"),
        (payload(close=DROP), "missing_field"),
        (payload(revision=DROP), "missing_field"),
        (payload(symbol=""), "bad_symbol"),
        (payload(symbol="A B"), "bad_symbol"),
        (payload(symbol=7), "bad_symbol"),
        (payload(symbol="X" * 33), "bad_symbol"),
        (payload(date="2024/05/17"), "unparseable_date"),
        (payload(date="2024-02-30"), "unparseable_date"),
        (payload(date="20240517"), "unparseable_date"),
        (payload(date=20240517), "unparseable_date"),
        (payload(revision=-1), "bad_revision"),
        (payload(revision=True), "bad_revision"),
        (payload(revision=1.5), "bad_revision"),
        (payload(revision="two"), "bad_revision"),
        (payload(revision=2**31), "bad_revision"),
        (payload(close="NaN"), "non_finite_price"),
        (payload(close="Infinity"), "non_finite_price"),
        (payload(high="1e999"), "non_finite_price"),
        (payload(low="abc"), "non_finite_price"),
        (payload(open="1_000"), "non_finite_price"),
        (payload(volume=True), "non_finite_price"),
        (payload(adj_close=[1]), "non_finite_price"),
        (payload(close=10**400), "non_finite_price"),
    ],
)
def test_every_bad_message_has_its_reason(raw, code):
    with pytest.raises(BadMessage) as caught:
        decode_bar(raw)
    assert caught.value.reason_code == code
    assert caught.value.reason and isinstance(caught.value, ValueError)


def test_reason_quotes_a_short_excerpt():
    with pytest.raises(BadMessage) as caught:
        decode_bar(payload(close="x" * 500))
    assert caught.value.reason == f"close '{'x' * 40}'... is not a finite number."


def test_subject_is_valid_for_any_symbol():
    assert subject_for("AAPL") == "bars.AAPL"
    assert subject_for("BRK.B") == "bars.BRK~2EB"
    assert subject_for("A$ B*>", prefix="feed") == "feed.A~24~20B~2A~3E"
    assert subject_for("") == "bars.~"
    for symbol in ["BRK.B", "A B", "ÄÖ", "X>", "*", "a.b.c"]:
        assert re.fullmatch(r"bars\.[A-Za-z0-9_~-]+", subject_for(symbol))
    assert subject_for("A.B") != subject_for("A~2EB")  # '~' is escaped too: one subject per symbol


def test_the_symbol_comes_back_from_its_subject():
    """A Kafka message's key is the symbol publish.py built the subject from."""
    for symbol in ["AAPL", "BRK.B", "A$ B*>", "", "A~2EB", "ÄÖ.x", "X-Y_z", "~"]:
        assert symbol_of_subject(subject_for(symbol)) == symbol
        assert symbol_of_subject(subject_for(symbol, prefix="feed")) == symbol
