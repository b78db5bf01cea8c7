"""Where the feed's broker is and what the feed is called there (no broker client imported)."""

from __future__ import annotations

import argparse
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

URL_VARIABLE = "STOCK_ANALYTICS_NATS_URL"
BOOTSTRAP_VARIABLE = "STOCK_ANALYTICS_KAFKA_BOOTSTRAP"
BACKEND_VARIABLE = "STOCK_ANALYTICS_BROKER"
BACKENDS = ("kafka", "nats")
KAFKA_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kafka.sh"


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
            f"{URL_VARIABLE} is not set: start the project's JetStream server with "
            '`STOCK_ANALYTICS_BROKER=nats make stream-up` and run `eval "$(bash scripts/nats.sh env)"`, '
            "or pass --url nats://HOST:PORT."
        )
    return BrokerSettings(
        url=url,
        stream=stream or os.environ.get("STOCK_ANALYTICS_NATS_STREAM") or "BARS",
        durable=os.environ.get("STOCK_ANALYTICS_NATS_DURABLE") or "warehouse",
    )


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str  # host:port,host:port
    topic: str = "bars"
    group: str = "warehouse"
    partitions: int = 12
    # A consumer silent this long loses its partitions to the rest of the group (Kafka's default
    # is 45 s; the feed's batches are short, so a stalled consumer is noticed sooner).
    session_timeout_s: float = 10.0

    @property
    def subject_prefix(self) -> str:
        """What publish.py builds subjects with; a Kafka message's key is the subject's symbol."""
        return "bars"


def backend_from_env(choice: str | None = None) -> str:
    """kafka (the default) or nats: `choice` (--broker), else STOCK_ANALYTICS_BROKER."""
    backend = (choice or os.environ.get(BACKEND_VARIABLE) or "kafka").strip().lower()
    if backend not in BACKENDS:
        raise SettingsError(f"{BACKEND_VARIABLE}/--broker is {backend!r}: pick one of {', '.join(BACKENDS)}")
    return backend


def kafka_settings_from_env(bootstrap: str | None = None, topic: str | None = None) -> KafkaSettings:
    """The bootstrap servers: `bootstrap`, else STOCK_ANALYTICS_KAFKA_BOOTSTRAP, else the
    project's own cluster (scripts/kafka.sh, under STOCK_ANALYTICS_STATE_DIR) once it was started."""
    servers = bootstrap or os.environ.get(BOOTSTRAP_VARIABLE) or _project_bootstrap()
    if not servers:
        raise SettingsError(
            f"no Kafka cluster: start the project's with `make stream-up`, or set {BOOTSTRAP_VARIABLE}"
            " (host:port,...) for another one."
        )
    return KafkaSettings(
        bootstrap=servers,
        topic=topic or os.environ.get("STOCK_ANALYTICS_KAFKA_TOPIC") or "bars",
        group=os.environ.get("STOCK_ANALYTICS_KAFKA_GROUP") or "warehouse",
    )


def _project_bootstrap() -> str:
    state = Path(os.environ.get("STOCK_ANALYTICS_STATE_DIR") or KAFKA_SCRIPT.parents[1] / ".local")
    if not (state / "kafka" / "nodes").is_file():
        return ""
    printed = subprocess.run(["bash", str(KAFKA_SCRIPT), "env"], capture_output=True, text=True, check=True)
    return printed.stdout.strip().partition("=")[2]


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say which broker the feed is on and where: the same for every command."""
    parser.add_argument(
        "--broker",
        choices=BACKENDS,
        help=f"the feed's broker (default: nats with --url, else ${BACKEND_VARIABLE} or kafka)",
    )
    parser.add_argument(
        "--bootstrap",
        help=f"Kafka: host:port,... (default: ${BOOTSTRAP_VARIABLE} or the project's cluster)",
    )
    parser.add_argument("--url", help=f"NATS: nats://HOST:PORT (default: ${URL_VARIABLE})")
    parser.add_argument(
        "--stream", help="NATS: the JetStream stream (default: $STOCK_ANALYTICS_NATS_STREAM or BARS)"
    )


def settings_from_arguments(args: argparse.Namespace) -> BrokerSettings | KafkaSettings:
    """The broker add_broker_arguments' options name (a NATS URL alone picks NATS), the rest
    from the environment; raises SettingsError saying what to set."""
    if backend_from_env(args.broker or ("nats" if args.url else None)) == "kafka":
        return kafka_settings_from_env(args.bootstrap)
    return settings_from_env(args.url, args.stream)
