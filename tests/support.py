"""Test-run plumbing: which TimescaleDB edition a test needs, and what a run says about those it
could not run. (Databases, the sample and the project's paths are in devtools.)"""

from __future__ import annotations

# TimescaleDB editions by `timescaledb.license`: 'timescale' is the community edition
# (compression, continuous aggregates, policies), 'apache' the Apache-2 one (a community build
# acts as it with timescaledb.license = 'apache' in the server's configuration).
LICENSES = ("apache", "timescale")
# Set by `make test` for each pass: the license the server must have (a mismatch stops the run).
EXPECTED_LICENSE_VAR = "STOCK_ANALYTICS_EXPECTED_LICENSE"


def missing_edition(markers: set[str], license: str | None) -> str | None:
    """The edition marker ('community' or 'apache') a test has that a server with this
    license cannot satisfy, else None."""
    if "community" in markers and license != "timescale":
        return "community"
    if "apache" in markers and license != "apache":
        return "apache"
    return None


def deselection_note(edition: str, count: int, license: str | None) -> str:
    """The one line a test run prints about the tests of an edition it could not run."""
    tests, need = (f"{count} tests", "need") if count != 1 else ("1 test", "needs")
    if edition == "community":
        return (
            f"community tests did not run: {tests} {need} the TimescaleDB community edition "
            f"(license 'timescale') and this server's license is '{license}'. Build it from a "
            "source archive: TIMESCALEDB_SOURCE=/path/timescaledb-X.Y.Z.tar.gz make db-up (README)."
        )
    return (
        f"apache tests did not run here: {tests} {'check' if count != 1 else 'checks'} the Apache "
        "edition (license 'apache') and "
        f"this server's license is '{license}'; `make test` runs them on an apache-licensed "
        "cluster of their own (make test-apache)."
    )
