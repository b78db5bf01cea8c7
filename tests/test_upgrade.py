"""A warehouse built by the previous release upgrades in place with a plain `dbt build`.

The previous release (PREVIOUS_RELEASE, taken from git) builds a database; the current code's
`dbt build` (no --full-refresh) then rebuilds staging once under the new rules (a zero open is
not recorded; the price guard's accepted history is computed from every stored bar) and the
models fed by it follow. The result equals a --full-refresh, and the next daily refresh is
judged by the guard as usual.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from devtools.databases import Database
from devtools.project import DBT, PROJECT_DIR, SAMPLE_DIR
from tests.test_incremental import assert_frames_equal, snapshot

# The last release before the price guard (main before it landed).
PREVIOUS_RELEASE = "1b9fb380d0888389eec80bbb2e818685567a5de0"
SYMBOLS = ("stocks/BAC.csv", "stocks/ABNB.csv", "etfs/ARKK.csv", "stocks/AMD.csv")


def previous_release(target: Path) -> Path:
    """The previous release's dbt project, from git, in a folder of its own."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", PREVIOUS_RELEASE],
        cwd=PROJECT_DIR,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.fail(f"git archive {PREVIOUS_RELEASE}: {archive.stderr.decode().strip()} (a shallow clone?)")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def test_a_warehouse_of_the_previous_release_upgrades_with_dbt_build(fresh_db: Database, tmp_path: Path):
    db = fresh_db
    data = tmp_path / "data"
    for name in SYMBOLS:
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DIR / name, data / name)
    assert db.run_loader(data).returncode == 0

    old = previous_release(tmp_path / "previous")
    built = subprocess.run(
        [str(DBT), "build"],
        cwd=old,
        env={**db.role_env("transformer"), "DBT_PROFILES_DIR": str(old)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:]
    assert db.scalar("select count(*) from staging.stg_market_data__daily_prices where open = 0") > 0
    assert db.scalar("select to_regclass('staging.stg_market_data__quality_baseline')") is None

    upgrade = db.dbt("build")
    assert upgrade.returncode == 0, upgrade.stdout[-3000:]
    assert db.scalar("select count(*) from staging.stg_market_data__daily_prices where open = 0") == 0
    staged = db.scalar("select count(*) from staging.stg_market_data__daily_prices")
    assert db.scalar("select sum(bars) from staging.stg_market_data__quality_baseline") == staged
    assert db.scalar("select count(*) from staging.stg_market_data__held_prices") == 0
    upgraded = snapshot(db)

    assert db.dbt("build", "--full-refresh").returncode == 0
    for relation, frame in snapshot(db).items():
        assert_frames_equal(upgraded[relation], frame, relation)

    # Guarded from then on: a week of zero volumes in a symbol that never had one is held back.
    bac = data / "stocks" / "BAC.csv"
    lines = bac.read_text().splitlines()
    last = lines[-1].split(",")
    sessions = [s.strip() for s in (PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv").open()][1:]
    for date in [s for s in sessions if s > last[0]][:12]:
        lines.append(",".join([date, *last[1:6], "0"]))
    bac.write_text("\n".join(lines) + "\n")
    assert db.run_loader(data).returncode == 0
    assert db.dbt("build").returncode != 0
    assert db.query("select distinct symbol from staging.stg_market_data__held_prices") == [("BAC",)]
