"""Where the feed's broker is and what the feed is called there (no broker client imported)."""

from __future__ import annotations

import os
from dataclasses import dataclass

URL_VARIABLE = "STOCK_ANALYTICS_NATS_URL"


class SettingsError(ValueError):
    """The environment does not say where the broker is; the message says what to set."""


@dataclass(frozen=True)
class BrokerSettings:
    url: str
    stream: str = "BARS"
    subjects: str = "bars.>"
    durable: str = "warehouse"
    ack_wait_s: float = 30.0

    @property
    def subject_prefix(self) -> str:
        """'bars' for 'bars.>': what stream.messages.subject_for puts before the symbol token."""
        return self.subjects.removesuffix(".>").removesuffix(".*")


def settings_from_env(url: str | None = None, stream: str | None = None) -> BrokerSettings:
    """STOCK_ANALYTICS_NATS_URL (required unless `url` is given), optional _STREAM and _DURABLE."""
    url = url or os.environ.get(URL_VARIABLE)
    if not url:
        raise SettingsError(
            f"{URL_VARIABLE} is not set: start the project broker with `make stream-up` and run "
            '`eval "$(bash scripts/stream.sh env)"`, or pass --url nats://HOST:PORT.'
        )
    return BrokerSettings(
        url=url,
        stream=stream or os.environ.get("STOCK_ANALYTICS_NATS_STREAM") or "BARS",
        durable=os.environ.get("STOCK_ANALYTICS_NATS_DURABLE") or "warehouse",
    )
