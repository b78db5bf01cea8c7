"""The dbt project as users meet it: docs, TimescaleDB fallbacks, macro argument errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import Database


def test_docs_generate_and_every_model_and_column_is_described(sample_db: Database):
    proc = sample_db.dbt("docs", "generate")
    assert proc.returncode == 0, proc.stdout[-3000:]
    target = Path(sample_db.env["DBT_TARGET_PATH"])
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) == 13
    for model in models:
        assert model["description"].strip(), model["name"]
        built = catalog["nodes"][model["unique_id"]]["columns"]
        documented = {name.lower() for name, col in model["columns"].items() if col["description"].strip()}
        assert set(built) <= documented, (model["name"], set(built) - documented)
    assert {e["name"] for e in manifest["exposures"].values()} == {
        "market_analytics_queries",
        "stock_report",
        "marts_http_api",
    }, "the marts' consumers are declared"


def test_continuous_aggregates_fall_back_to_tables_on_the_apache_edition(sample_db: Database):
    assert sample_db.scalar("show timescaledb.license") == "apache"
    proc = sample_db.dbt(
        "run", "--select", "fct_price_averages_monthly", "--vars", "{use_continuous_aggregates: true}"
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    skipped = [line for line in proc.stdout.splitlines() if "continuous aggregates skipped" in line]
    assert len(skipped) == 1
    assert "license is 'apache'" in skipped[0] and "fct_price_averages_monthly" in skipped[0]
    assert (
        sample_db.scalar(
            "select table_type from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_price_averages_monthly'"
        )
        == "BASE TABLE"
    )


def test_compression_is_skipped_with_one_line_on_the_apache_edition(sample_db: Database):
    proc = sample_db.dbt(
        "run", "--select", "stg_market_data__daily_prices", "--vars", "{compress_after: '2 years'}"
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    skipped = [line for line in proc.stdout.splitlines() if "compression skipped" in line]
    assert len(skipped) == 1 and "stg_market_data__daily_prices" in skipped[0]
    assert (
        sample_db.scalar(
            "select compression_enabled from timescaledb_information.hypertables "
            "where hypertable_name = 'stg_market_data__daily_prices'"
        )
        is False
    )
    # The views on the rebuilt table come back with the rest of the build.
    assert sample_db.dbt("build", "--select", "stg_market_data__daily_prices+").returncode == 0


def test_license_and_version_macros_report_the_server(sample_db: Database):
    proc = sample_db.dbt("run-operation", "print_timescaledb_info")
    assert proc.returncode == 0, proc.stdout[-2000:]
    version = sample_db.scalar("select extversion from pg_extension where extname = 'timescaledb'")
    assert f"TimescaleDB {version}, license apache" in proc.stdout


def test_bad_macro_arguments_fail_at_compile_time_with_a_clear_message(sample_db: Database, tmp_path):
    analyses = Path(__file__).resolve().parents[1] / "analyses"
    probe = analyses / "zz_probe_bad_bucket.sql"
    probe.write_text("{{ period_price_averages('2 weeks') }}\n")
    try:
        proc = sample_db.dbt("compile", "--select", "zz_probe_bad_bucket")
    finally:
        probe.unlink()
    assert proc.returncode != 0
    assert "bucket_width must be one of" in proc.stdout
