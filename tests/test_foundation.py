"""The environment and the end-to-end slice: database, loader, dbt build, hypertable."""

from __future__ import annotations

import pytest

from devtools.databases import Database
from devtools.project import SAMPLE_DIR
from devtools.sample import sample_data_lines


def test_timescaledb_extension_is_loaded(fresh_db: Database):
    version = fresh_db.scalar("select extversion from pg_extension where extname = 'timescaledb'")
    assert version is not None and version.startswith("2.")
    assert fresh_db.scalar("show timescaledb.license") in {"apache", "timescale"}
    # Usable, not just installed: hypertables need the library preloaded by the server.
    fresh_db.query("create table t (ts date not null, v int)")
    fresh_db.query("select create_hypertable('t', by_range('ts', interval '30 days'))")
    fresh_db.query("insert into t values ('2024-01-01', 1), ('2024-03-01', 2)")
    assert fresh_db.scalar("select count(*) from show_chunks('t')") == 2


@pytest.mark.editions
def test_raw_row_count_equals_data_lines_of_the_sample(sample_db: Database):
    expected = sample_data_lines()
    loaded = dict(sample_db.query("select symbol, count(*) from raw.current_daily_prices group by symbol"))
    assert loaded == expected
    assert sum(loaded.values()) == 187_462  # the figure the sample's README gives
    meta_lines = sum(1 for _ in (SAMPLE_DIR / "symbols_valid_meta.csv").open()) - 1
    assert sample_db.scalar("select count(*) from raw.symbols_meta") == meta_lines


@pytest.mark.editions
def test_dbt_build_succeeds_with_every_node_passing(sample_db: Database):
    results = sample_db.build_results["results"]
    assert results, "dbt build ran no nodes"
    bad = [
        (r["unique_id"], r["status"])
        for r in results
        if r["status"] not in {"success", "pass", "warn", "no-op"}
    ]
    assert bad == []
    assert any(r["unique_id"].startswith("test.") for r in results)


@pytest.mark.editions
def test_staging_prices_is_a_hypertable_on_trade_date(sample_db: Database):
    rows = sample_db.query(
        """
        select d.column_name, d.column_type::text
          from timescaledb_information.dimensions d
         where d.hypertable_schema = 'staging' and d.hypertable_name = 'stg_market_data__daily_prices'
        """
    )
    assert rows == [("trade_date", "date")]
    assert (
        sample_db.scalar(
            "select count(*) from timescaledb_information.chunks "
            "where hypertable_schema = 'staging' and hypertable_name = 'stg_market_data__daily_prices'"
        )
        > 1
    )


@pytest.mark.editions
def test_rerunning_the_loader_on_the_sample_loads_nothing(own_sample_db: Database):
    before = own_sample_db.scalar("select count(*) from raw.daily_prices")
    proc, summary = own_sample_db.load_summary(SAMPLE_DIR)
    assert proc.returncode == 0, proc.stderr
    assert summary["files_unchanged"] == summary["files_seen"] == 25
    assert summary["rows_loaded"] == 0
    assert "nothing new" in proc.stderr
    assert own_sample_db.scalar("select count(*) from raw.daily_prices") == before


@pytest.mark.editions
def test_second_dbt_build_keeps_the_hypertables_and_what_is_built_on_them(own_sample_db: Database):
    """A normal build updates the incremental hypertables in place: no drop, no swap."""
    relations = (
        "select c.oid::bigint, n.nspname || '.' || c.relname from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in ('staging', 'intermediate', 'marts') and c.relkind in ('r', 'v', 'm') "
        "and c.relname not like '%%__changes' order by 2"
    )
    before = own_sample_db.query(relations)
    rebuild = own_sample_db.dbt("build", "--select", "stg_market_data__daily_prices+")
    assert rebuild.returncode == 0, rebuild.stdout[-5000:]
    assert own_sample_db.scalar("select count(*) from marts.fct_daily_moving_averages") == 187_459
    hypertables = own_sample_db.query(
        "select hypertable_schema, hypertable_name from timescaledb_information.hypertables "
        "where hypertable_schema in ('staging', 'intermediate') order by 1, 2"
    )
    assert hypertables == [
        ("intermediate", "int_daily_prices__symbol_firsts"),
        ("intermediate", "int_daily_prices__symbol_spans"),
        ("intermediate", "int_daily_prices__trading_days"),
        ("staging", "stg_market_data__daily_prices"),
    ]
    after = dict((name, oid) for oid, name in own_sample_db.query(relations))
    kept = {name: oid for oid, name in before if name.split(".")[1] in {h[1] for h in hypertables}}
    assert kept and all(after[name] == oid for name, oid in kept.items())
