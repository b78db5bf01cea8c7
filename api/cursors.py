"""Opaque page cursors: the last key of a page, tagged with what kind of key it is, in
base64url, so a client passes `next` back unchanged and a cursor from another list (or a
made-up one) is refused with a clear 422 instead of silently skipping rows."""

from __future__ import annotations

import base64
import binascii
from datetime import date

MAX_CURSOR_LENGTH = 200
NOT_A_CURSOR = "not a cursor of this list: pass the `next` value of the previous page unchanged"


class BadCursor(ValueError):
    pass


def encode(kind: str, key: str | date) -> str:
    raw = f"{kind}:{key.isoformat() if isinstance(key, date) else key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str) -> str:
    """The key inside a cursor of `kind`, or BadCursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor(NOT_A_CURSOR) from None
    found, sep, key = raw.partition(":")
    if not sep or found != kind or not key or not key.isprintable():
        raise BadCursor(NOT_A_CURSOR)
    return key


def decode_date(kind: str, cursor: str) -> date:
    try:
        return date.fromisoformat(decode(kind, cursor))
    except ValueError as exc:
        if isinstance(exc, BadCursor):
            raise
        raise BadCursor(NOT_A_CURSOR) from None
