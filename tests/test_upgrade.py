"""A warehouse built by an earlier release upgrades in place with a plain `dbt build`.

The last release (LAST_RELEASE: before the incremental engine became a dbt package) builds a
database and loads a day more; the current code's `dbt build` replaces the routines, adds the
package's list of routines and batch tables, applies the new day, and equals a --full-refresh.

The release before the price guard (PREVIOUS_RELEASE) builds a database; the current code's
`dbt build` (no --full-refresh) then rebuilds staging once under the new rules (a zero open is
not recorded; the price guard's accepted history is computed from every stored bar) and the
models fed by it follow. The result equals a --full-refresh, and the next daily refresh is
judged by the guard as usual.

The release before the guard's baseline kept dates (UNDATED_BASELINE_RELEASE) builds a
database; the next `dbt build` gives each symbol's baseline its stored range.

The last release whose period marts read the trading days (TRADING_DAYS_PERIODS_RELEASE)
builds a database; the next `dbt build` makes each period mart again once, from staging, equal
to a --full-refresh, and a corrected old bar after it reaches the marts as usual.
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

# Runs dbt or reads the built sample: `make test` runs it on both TimescaleDB editions.
pytestmark = pytest.mark.editions

# The last release before the price guard (main before it landed).
PREVIOUS_RELEASE = "1b9fb380d0888389eec80bbb2e818685567a5de0"
# The last release before the incremental engine became the package timescale_incremental.
LAST_RELEASE = "6369cbc85267472ad57ffb7fd3ffc2a160dac90a"
# The last release whose price guard kept no dates in its accepted history.
UNDATED_BASELINE_RELEASE = "3dd5fe220a7ebdd80113d76cbe172244e94f5e27"
# The last release whose period marts read the trading days (and counted in their change log).
TRADING_DAYS_PERIODS_RELEASE = "b3ca856440e39ac28662741ee4c3ba42bb6b3e3c"
# The last release whose monthly, quarterly and yearly marts were continuous aggregates on the
# community edition (and whose period tables' batches named no periods).
VARIABLE_WIDTH_AGGREGATES_RELEASE = "431d601b6f63d5d3a5b5bf544578935ddd1f32a6"
VARIABLE_WIDTH = ("monthly", "quarterly", "yearly")
SYMBOLS = ("stocks/BAC.csv", "stocks/ABNB.csv", "etfs/ARKK.csv", "stocks/AMD.csv")


def release_project(target: Path, release: str = PREVIOUS_RELEASE) -> Path:
    """A release's dbt project, from git, in a folder of its own."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", release],
        cwd=PROJECT_DIR,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.fail(f"git archive {release}: {archive.stderr.decode().strip()} (a shallow clone?)")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return target


def build_release(db: Database, project: Path) -> subprocess.CompletedProcess[str]:
    """`dbt build` of a release's project (as the transformer), on the test's database; its
    local packages installed first when it has any."""
    env = {**db.role_env("transformer"), "DBT_PROFILES_DIR": str(project)}
    if (project / "packages.yml").exists():
        deps = subprocess.run(
            [str(DBT), "deps"], cwd=project, env=env, capture_output=True, text=True, check=False
        )
        if deps.returncode != 0:
            return deps
    return subprocess.run(
        [str(DBT), "build"], cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def copy_symbols(target: Path) -> Path:
    for name in SYMBOLS:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE_DIR / name, target / name)
    return target


def assert_equals_a_full_rebuild(db: Database) -> None:
    """Every relation as the upgrade left it equals what `dbt build --full-refresh` makes."""
    upgraded = snapshot(db)
    assert db.dbt("build", "--full-refresh").returncode == 0
    for relation, frame in snapshot(db).items():
        assert_frames_equal(upgraded[relation], frame, relation)


def load_a_corrected_bac_day(db: Database, tmp_path: Path) -> object:
    """BAC's first day from June 1990 on, loaded again with other values (a merge); that day."""
    day = db.scalar(
        "select min(trade_date) from staging.stg_market_data__daily_prices"
        " where symbol = 'BAC' and trade_date >= '1990-06-01'"
    )
    correction = tmp_path / "correction" / "BAC.csv"
    correction.parent.mkdir()
    correction.write_text(f"Date,Open,High,Low,Close,Adj Close,Volume\n{day},9,9.5,8.25,9.125,4.5,123456\n")
    assert db.run_loader(correction).returncode == 0
    return day


def built_by_release_then_grown(db: Database, tmp_path: Path, release: str, held_back: int) -> list[str]:
    """The sample's symbols loaded with AMD's last `held_back` lines held back and built by
    `release`; then AMD's held-back days loaded, for the current code's build. AMD's lines."""
    data = copy_symbols(tmp_path / "data")
    amd = data / "stocks" / "AMD.csv"
    lines = amd.read_text().splitlines()
    amd.write_text("\n".join(lines[:-held_back]) + "\n")
    assert db.run_loader(data).returncode == 0
    built = build_release(db, release_project(tmp_path / release[:7], release))
    assert built.returncode == 0, built.stdout[-3000:]
    amd.write_text("\n".join(lines) + "\n")
    assert db.run_loader(data).returncode == 0
    return lines


def test_a_warehouse_of_the_last_release_upgrades_with_dbt_build(fresh_db: Database, tmp_path: Path):
    db = fresh_db
    lines = built_by_release_then_grown(db, tmp_path, LAST_RELEASE, held_back=5)
    assert db.scalar("select to_regclass('staging.incremental_routines')") is None

    upgrade = db.dbt("build")
    assert upgrade.returncode == 0, upgrade.stdout[-3000:]
    assert "symbols_recomputed 0" in upgrade.stdout  # the new days applied, nothing rebuilt
    # The trading days gain the indicators: built again from staging once, by dbt build alone.
    assert 'int_daily_prices__trading_days" lacks columns the model reads' in upgrade.stdout
    assert db.scalar("select count(*) from marts.fct_daily_indicators where rsi_14 is null") == db.scalar(
        "select 14 * count(distinct symbol) from marts.fct_daily_indicators"
    )
    strategies = {strategy for (strategy,) in db.query("select strategy from staging.incremental_routines")}
    assert {"raw_loads", "upstream_changes"} <= strategies
    latest = db.scalar("select max(trade_date)::text from marts.fct_daily_prices where symbol = 'AMD'")
    assert latest == lines[-1].split(",")[0]
    assert_equals_a_full_rebuild(db)


def test_a_warehouse_of_the_previous_release_upgrades_with_dbt_build(fresh_db: Database, tmp_path: Path):
    db = fresh_db
    data = copy_symbols(tmp_path / "data")
    assert db.run_loader(data).returncode == 0

    old = release_project(tmp_path / "previous")
    built = build_release(db, old)
    assert built.returncode == 0, built.stdout[-3000:]
    assert db.scalar("select count(*) from staging.stg_market_data__daily_prices where open = 0") > 0
    assert db.scalar("select to_regclass('staging.stg_market_data__quality_baseline')") is None

    upgrade = db.dbt("build")
    assert upgrade.returncode == 0, upgrade.stdout[-3000:]
    assert db.scalar("select count(*) from staging.stg_market_data__daily_prices where open = 0") == 0
    staged = db.scalar("select count(*) from staging.stg_market_data__daily_prices")
    assert db.scalar("select sum(bars) from staging.stg_market_data__quality_baseline") == staged
    assert db.scalar("select count(*) from staging.stg_market_data__held_prices") == 0
    assert_equals_a_full_rebuild(db)

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


def test_a_baseline_of_the_release_before_its_dates_takes_each_symbols_stored_range(
    fresh_db: Database, tmp_path: Path
):
    """The guard looks for the stored bars around a pass's new ones within the dates its
    baseline spans: an older baseline gains them from staging at the next build, and the
    build's new day is judged and applied as usual."""
    db = fresh_db
    lines = built_by_release_then_grown(db, tmp_path, UNDATED_BASELINE_RELEASE, held_back=1)
    dated = (
        "select count(*) from information_schema.columns"
        " where table_name = 'stg_market_data__quality_baseline' and column_name = 'first_date'"
    )
    assert db.scalar(dated) == 0

    upgrade = db.dbt("build")
    assert upgrade.returncode == 0, upgrade.stdout[-3000:]
    assert "symbols_recomputed 0" in upgrade.stdout  # the new day applied, nothing rebuilt
    spans = db.query(
        "select symbol, min(first_date), max(last_date) from staging.stg_market_data__quality_baseline"
        " group by symbol order by symbol"
    )
    stored = db.query(
        "select symbol, min(trade_date), max(trade_date) from staging.stg_market_data__daily_prices"
        " group by symbol order by symbol"
    )
    assert spans == stored and len(stored) == len(SYMBOLS)
    assert {symbol: str(last) for symbol, _, last in stored}["AMD"] == lines[-1].split(",")[0]
    assert db.scalar("select count(*) from staging.stg_market_data__held_prices") == 0


def test_period_marts_of_the_trading_days_move_to_staging_with_dbt_build(
    fresh_db: Database, tmp_path: Path, server_license: str
):
    db = fresh_db
    built_by_release_then_grown(db, tmp_path, TRADING_DAYS_PERIODS_RELEASE, held_back=1)

    upgrade = db.dbt("build")
    assert upgrade.returncode == 0, upgrade.stdout[-3000:]
    # their watermarks counted in the trading days' change log: each mart is made again, once
    # (on the community edition the variable-width ones as tables, from continuous aggregates)
    remade_as_tables = len(VARIABLE_WIDTH) if server_license == "timescale" else 0
    assert upgrade.stdout.count("it reads another model than when it was built") == 4 - remade_as_tables, (
        upgrade.stdout[-3000:]
    )
    assert upgrade.stdout.count("(it was built as a continuous aggregate)") == remade_as_tables
    assert "symbols_recomputed 0" in upgrade.stdout  # the new day applied, staging not rebuilt
    assert_equals_a_full_rebuild(db)

    # From then on staging's changes drive them: one BAC close of 1990 corrected
    day = load_a_corrected_bac_day(db, tmp_path)
    corrected = db.dbt("build")
    assert corrected.returncode == 0, corrected.stdout[-3000:]
    assert "it reads another model" not in corrected.stdout
    assert db.scalar(
        "select avg_close from marts.fct_price_averages_weekly"
        " where symbol = 'BAC' and period_start = time_bucket('1 week', %s::date)",
        (day,),
    ) == db.scalar(
        "select avg(close) from staging.stg_market_data__daily_prices"
        " where symbol = 'BAC' and time_bucket('1 week', trade_date) = time_bucket('1 week', %s::date)",
        (day,),
    )


def test_variable_width_period_marts_become_tables_with_dbt_build(
    fresh_db: Database, tmp_path: Path, server_license: str
):
    """A warehouse of the release whose monthly, quarterly and yearly marts were continuous
    aggregates on the community edition: `dbt build` makes them tables (the weekly one stays),
    the tables' batches gain their periods, and from then on a corrected old bar is aggregated
    again in its month, quarter and year only."""
    db = fresh_db
    built_by_release_then_grown(db, tmp_path, VARIABLE_WIDTH_AGGREGATES_RELEASE, held_back=1)

    upgrade = db.dbt("build")
    assert upgrade.returncode == 0, upgrade.stdout[-3000:]
    remade = len(VARIABLE_WIDTH) if server_license == "timescale" else 0
    assert upgrade.stdout.count("(it was built as a continuous aggregate)") == remade, upgrade.stdout[-3000:]
    assert "creating the continuous aggregate" not in upgrade.stdout
    assert "symbols_recomputed 0" in upgrade.stdout  # the new day applied, staging not rebuilt
    kinds = dict(
        db.query(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'marts' and table_name like 'fct_price_averages_%'"
        )
    )
    assert kinds == {
        "fct_price_averages_weekly": "VIEW" if server_license == "timescale" else "BASE TABLE",
        **{f"fct_price_averages_{period}": "BASE TABLE" for period in VARIABLE_WIDTH},
    }
    assert_equals_a_full_rebuild(db)

    day = load_a_corrected_bac_day(db, tmp_path)
    corrected = db.dbt("build")
    assert corrected.returncode == 0, corrected.stdout[-3000:]
    for period in VARIABLE_WIDTH:
        assert (
            f'fct_price_averages_{period}": applied 1 changes of stg_market_data__daily_prices'
            " (1 periods deleted, 1 inserted)" in corrected.stdout
        ), corrected.stdout[-3000:]
    assert db.scalar(
        "select avg_close from marts.fct_price_averages_monthly"
        " where symbol = 'BAC' and period_start = time_bucket('1 month', %s::date)",
        (day,),
    ) == db.scalar(
        "select avg(close) from staging.stg_market_data__daily_prices"
        " where symbol = 'BAC' and close is not null"
        " and time_bucket('1 month', trade_date) = time_bucket('1 month', %s::date)",
        (day,),
    )
