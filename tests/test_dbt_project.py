"""The dbt project as users meet it: docs, TimescaleDB fallbacks, macro argument errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from devtools.databases import Database
from devtools.project import DBT, PROJECT_DIR

# Runs dbt or reads the built sample: `make test` runs it on both TimescaleDB editions.
pytestmark = pytest.mark.editions


def test_docs_generate_and_every_model_and_column_is_described(sample_db: Database):
    proc = sample_db.dbt("docs", "generate")
    assert proc.returncode == 0, proc.stdout[-3000:]
    target = Path(sample_db.env["DBT_TARGET_PATH"])
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) == 17
    for model in models:
        assert model["description"].strip(), model["name"]
        built = catalog["nodes"][model["unique_id"]]["columns"]
        documented = {name.lower() for name, col in model["columns"].items() if col["description"].strip()}
        assert set(built) <= documented, (model["name"], set(built) - documented)
    # Shared column docs are doc blocks (models/docs/_columns.md), written once and resolved.
    by_name = {model["name"]: model["columns"] for model in models}
    texts = [column["description"] for columns in by_name.values() for column in columns.values()]
    assert not [text for text in texts if "{{" in text or "doc(" in text]
    daily, trading_days = by_name["fct_daily_prices"], by_name["int_daily_prices__trading_days"]
    for column in ("symbol", "trade_date", "open", "high", "low", "close", "adj_close", "volume"):
        assert daily[column]["description"] == trading_days[column]["description"], column
    periods = ("weekly", "monthly", "quarterly", "yearly")
    for column in ("trading_days", "avg_close", "period_open", "total_volume"):
        assert len({by_name[f"fct_price_averages_{p}"][column]["description"] for p in periods}) == 1
    indicators, screener = by_name["fct_daily_indicators"], by_name["fct_latest_day"]
    for column in ("ema_12", "macd", "rsi_14", "atr_14", "bollinger_upper", "volatility_20", "high_252"):
        assert indicators[column]["description"] == trading_days[column]["description"], column
        assert indicators[column]["description"] == screener[column]["description"], column
    assert by_name["fct_daily_moving_averages"]["sma_200"]["description"].startswith(
        "Average close of the last 200 trading days"
    )
    assert {e["name"] for e in manifest["exposures"].values()} == {
        "market_analytics_queries",
        "stock_report",
        "marts_http_api",
    }, "the marts' consumers are declared"


@pytest.mark.apache
def test_continuous_aggregates_fall_back_to_tables_on_the_apache_edition(own_sample_db: Database):
    assert own_sample_db.scalar("show timescaledb.license") == "apache"
    proc = own_sample_db.dbt(
        "run", "--select", "fct_price_averages_monthly", "--vars", "{use_continuous_aggregates: true}"
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    skipped = [line for line in proc.stdout.splitlines() if "continuous aggregates skipped" in line]
    assert len(skipped) == 1
    assert "license is 'apache'" in skipped[0] and "fct_price_averages_monthly" in skipped[0]
    assert (
        own_sample_db.scalar(
            "select table_type from information_schema.tables "
            "where table_schema = 'marts' and table_name = 'fct_price_averages_monthly'"
        )
        == "BASE TABLE"
    )


@pytest.mark.apache
def test_compression_is_skipped_with_one_line_on_the_apache_edition(own_sample_db: Database):
    proc = own_sample_db.dbt(
        "run", "--select", "stg_market_data__daily_prices", "--vars", "{compress_after: '2 years'}"
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    skipped = [line for line in proc.stdout.splitlines() if "compression skipped" in line]
    assert len(skipped) == 1 and "stg_market_data__daily_prices" in skipped[0]
    assert (
        own_sample_db.scalar(
            "select compression_enabled from timescaledb_information.hypertables "
            "where hypertable_name = 'stg_market_data__daily_prices'"
        )
        is False
    )
    # The views on the rebuilt table come back with the rest of the build.
    assert own_sample_db.dbt("build", "--select", "stg_market_data__daily_prices+").returncode == 0


def test_license_and_version_macros_report_the_server(sample_db: Database):
    proc = sample_db.dbt("run-operation", "print_timescaledb_info")
    assert proc.returncode == 0, proc.stdout[-2000:]
    version = sample_db.scalar("select extversion from pg_extension where extname = 'timescaledb'")
    license = sample_db.scalar("show timescaledb.license")
    offers = "available" if license == "timescale" else "not available (need the community edition)"
    line = f"TimescaleDB {version}, license {license}: compression and continuous aggregates {offers}"
    assert line in proc.stdout


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "timescale_incremental.changed_rows(ref('int_daily_prices__trading_days'), rows_before=-1)",
            "rows_before must be a whole number of rows, got -1",
        ),
    ],
)
def test_bad_macro_arguments_fail_at_compile_time_with_a_clear_message(sample_db: Database, call, message):
    proc = sample_db.dbt("compile", "--inline", "{{ " + call + " }}")
    assert proc.returncode != 0
    assert message in proc.stdout


def _differences(cur, computing_sql: str, stored_sql: str) -> tuple[int, int, int]:
    """(rows computed, computed rows not stored, stored rows not computed)."""
    cur.execute(
        f"""with computed as ({computing_sql}), stored as ({stored_sql})
        select
            (select count(*) from computed),
            (select count(*) from (select * from computed except all select * from stored) as extra),
            (select count(*) from (select * from stored except all select * from computed) as missing)"""
    )
    return cur.fetchone()


def test_the_incremental_models_compiled_sql_runs_as_it_stands(sample_db: Database):
    """Staging and the trading days read their batches as the source `batches`: compiled, their
    SQL runs on its own (dbt show), selects nothing while the batch is empty, and, given a batch
    in a transaction as their routine fills it, computes exactly the rows the build stored."""
    staging, trading_days = "stg_market_data__daily_prices", "int_daily_prices__trading_days"
    # dbt show also runs the model's tests, with a limit: they stay quick under one
    shown = sample_db.dbt("show", "-s", staging, timeout=300)
    assert shown.returncode == 0, shown.stdout[-3000:]
    assert "symbol" in shown.stdout and "trade_date" in shown.stdout
    compiled = sample_db.dbt("compile", "-s", staging, trading_days)
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    manifest = json.loads((Path(sample_db.env["DBT_TARGET_PATH"]) / "manifest.json").read_text())
    nodes = manifest["nodes"]
    sql = {name: nodes[f"model.stock_analytics.{name}"]["compiled_code"] for name in (staging, trading_days)}
    conn = sample_db.connect("transformer")
    conn.autocommit = False  # the batches are given in a transaction rolled back, as a routine's
    try:
        with conn.cursor() as cur:
            for name in (staging, trading_days):
                cur.execute(f"select count(*) from ({sql[name]}) as computed")
                assert cur.fetchone() == (0,), f"{name}: an empty batch selects nothing"

            cur.execute(
                """insert into staging.stg_market_data__daily_prices__batch (load_id, symbol, recompute)
                select load_id, symbol, true from raw.load_log
                where symbol = 'AAPL' and file_kind = 'prices' and status = 'loaded'"""
            )
            computed, extra, missing = _differences(
                cur, sql[staging], f"select * from staging.{staging} where symbol = 'AAPL'"
            )
            assert computed > 5000 and (extra, missing) == (0, 0)

            # The trading days from a date in the middle on go on from the days stored before it.
            cur.execute(
                f"""insert into staging.{trading_days}__batch (symbol, from_date)
                select symbol, trade_date from intermediate.{trading_days}
                where symbol = 'AAPL' and trading_day_number = 3000"""
            )
            computed, extra, missing = _differences(
                cur,
                sql[trading_days],
                f"""select * from intermediate.{trading_days}
                where symbol = 'AAPL' and trading_day_number >= 3000""",
            )
            assert computed > 1000 and (extra, missing) == (0, 0)
    finally:
        conn.rollback()
        conn.close()


def _project_with_calendar(target: Path, extra_line: str | None = None, seed_config: str = "") -> Path:
    """A copy of the project's dbt files whose calendar seed has one more line (or none) and
    seeds have one more config line (or none)."""
    target.mkdir()
    shutil.copy(PROJECT_DIR / "packages.yml", target / "packages.yml")
    project = (PROJECT_DIR / "dbt_project.yml").read_text()
    seeds_schema = "seeds:\n  stock_analytics:\n    +schema: seeds\n"
    assert seeds_schema in project
    (target / "dbt_project.yml").write_text(
        project.replace(seeds_schema, seeds_schema + (f"    {seed_config}\n" if seed_config else ""))
    )
    for folder in ("models", "macros", "seeds", "analyses", "tests/dbt", "dbt_packages"):
        shutil.copytree(PROJECT_DIR / folder, target / folder, symlinks=True)
    if extra_line:
        with (target / "seeds" / "nyse_trading_sessions.csv").open("a") as fh:
            fh.write(extra_line + "\n")
    return target


@pytest.mark.one_pass
def test_a_seed_is_loaded_again_only_when_its_file_or_config_changed(fresh_db: Database, tmp_path: Path):
    """The seed override: a seed whose file and config are those of its last load is left as it
    is (dbt reloads it on every build); a changed file, and a full refresh, load it."""
    sessions = "seeds.nyse_trading_sessions"
    rows_in_file = sum(1 for _ in (PROJECT_DIR / "seeds" / "nyse_trading_sessions.csv").open()) - 1

    def seed(*args: str) -> tuple[str, int, str]:
        proc = fresh_db.run([str(DBT), "seed", *args], timeout=300, role="transformer")
        assert proc.returncode == 0, proc.stdout[-3000:]
        (result,) = [r for r in fresh_db.dbt_results()["results"] if r["unique_id"].startswith("seed.")]
        return (
            result["message"],
            fresh_db.scalar(f"select count(*) from {sessions}"),
            str(fresh_db.scalar(f"select min(xmin::text) from {sessions}")),
        )

    message, rows, first_writer = seed()
    assert (message, rows) == (f"INSERT {rows_in_file}", rows_in_file)
    message, rows, writer = seed()
    assert (message, rows, writer) == ("UNCHANGED", rows_in_file, first_writer), "not written again"

    grown = _project_with_calendar(tmp_path / "grown", "2028-01-03")
    message, rows, _ = seed("--project-dir", str(grown))
    assert (message, rows) == (f"INSERT {rows_in_file + 1}", rows_in_file + 1)
    message, rows, writer = seed()
    assert (message, rows) == (f"INSERT {rows_in_file}", rows_in_file), "the file changed back"
    assert writer != first_writer
    configured = _project_with_calendar(tmp_path / "configured", seed_config="+quote_columns: false")
    message, rows, _ = seed("--project-dir", str(configured))
    assert (message, rows) == (f"INSERT {rows_in_file}", rows_in_file), "the config changed"
    message, rows, _ = seed("--full-refresh")
    assert (message, rows) == (f"CREATE {rows_in_file}", rows_in_file)
    assert seed()[0] == "UNCHANGED"


VIEWS = (
    "staging.base_market_data__daily_prices",
    "staging.stg_market_data__rejected_prices",
    "staging.stg_market_data__symbols",
    "intermediate.int_daily_prices__missing_sessions",
    "marts.fct_daily_prices",
    "marts.fct_daily_moving_averages",
    "marts.fct_daily_indicators",
)


@pytest.mark.one_pass
def test_a_view_is_rebuilt_only_when_what_it_would_be_changed(own_sample_db: Database, tmp_path: Path):
    """The view override leaves a view whose definition (as PostgreSQL stores it) and contract
    are those of its last build in place, unlocked: no swap, no comment written again. A changed
    definition, a column an upstream relation gained under `*`, a changed contract and a full
    refresh rebuild it; grants and comments changed by hand are restored either way."""
    db = own_sample_db
    prices = "marts.fct_daily_prices"

    def run_views(*args: str, succeeds: bool = True) -> dict[str, str]:
        proc = db.run([str(DBT), "run", "--select", "config.materialized:view", *args], 300, "transformer")
        assert (proc.returncode == 0) == succeeds, proc.stdout[-3000:]
        models = [r for r in db.dbt_results()["results"] if r["unique_id"].startswith("model.")]
        return {
            r["unique_id"].split(".")[2]: r["adapter_response"].get("_message", r["message"]) for r in models
        }

    def identity(view: str) -> tuple:
        # the view's relation, its stored query and its comments' rows (rewritten: a new xmin)
        return db.query(
            """
            select c.oid, r.oid, (select array_agg(d.xmin::text order by d.objsubid)
                                    from pg_description as d where d.objoid = c.oid)
            from pg_class as c join pg_rewrite as r on r.ev_class = c.oid
            where c.oid = %s::regclass
            """,
            (view,),
        )[0]

    before = {view: identity(view) for view in VIEWS}
    messages = run_views()
    assert set(messages.values()) == {"UNCHANGED"}, messages
    assert {view: identity(view) for view in VIEWS} == before, "nothing rebuilt, no comment rewritten"

    # By hand: the definition, a grant and a comment changed; raw.symbols_meta gains a column.
    definition = db.scalar(f"select pg_get_viewdef('{prices}'::regclass)")
    db.query(f"create or replace view {prices} as {definition.rstrip().rstrip(';')} limit 1")
    db.query(f"revoke select on {prices} from reader")
    db.query(f"comment on column {prices}.close is 'changed by hand'")
    db.query("alter table raw.symbols_meta add column added_by_hand text")
    messages = run_views()
    assert messages["fct_daily_prices"] != "UNCHANGED"
    assert messages["stg_market_data__symbols"] != "UNCHANGED", "its stored query expands a *"
    assert messages["fct_daily_moving_averages"] == "UNCHANGED"
    assert db.scalar(f"select count(*) from {prices}") > 1
    assert db.scalar(f"select has_table_privilege('reader', '{prices}', 'select')")
    close_comment = (
        f"select col_description('{prices}'::regclass, attnum) from pg_attribute"
        f" where attrelid = '{prices}'::regclass and attname = 'close'"
    )
    assert db.scalar(close_comment) != "changed by hand"
    db.query(f"revoke select on {prices} from reader")
    db.query(f"comment on column {prices}.close is 'changed by hand'")
    assert run_views()["fct_daily_prices"] == "UNCHANGED"
    assert db.scalar(f"select has_table_privilege('reader', '{prices}', 'select')"), "grant restored"
    assert db.scalar(close_comment) != "changed by hand", "comment restored"

    # A contract that no longer matches the view fails the build, as dbt's own check does.
    changed = _project_with_calendar(tmp_path / "contract")
    marts_yml = changed / "models" / "marts" / "_marts__models.yml"
    text = marts_yml.read_text()
    # the first model with a close is fct_daily_prices (its contract lists the columns' types)
    declared = "      - name: close\n        data_type: double precision"
    first_close = text.index(declared)
    assert (
        text.index("  - name: fct_daily_prices") < first_close < text.index("  - name: fct_daily_indicators")
    )
    marts_yml.write_text(text.replace(declared, "      - name: close\n        data_type: text", 1))
    proc = db.run(
        [
            str(DBT),
            "run",
            "--select",
            "fct_daily_prices",
            "--project-dir",
            str(changed),
            "--target-path",
            str(tmp_path / "contract-target"),
        ],
        300,
        "transformer",
    )
    assert proc.returncode != 0 and "contract" in proc.stdout.lower(), proc.stdout[-3000:]

    rebuilt = {view: identity(view)[0] for view in VIEWS}
    assert set(run_views("--full-refresh").values()) != {"UNCHANGED"}
    assert all(identity(view)[0] != rebuilt[view] for view in VIEWS), "a full refresh rebuilds every view"
