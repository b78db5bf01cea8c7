"""Each component's role can do its job and nothing more (scripts/sql/grant_roles.sql).

The sample_db fixture already loaded as `loader` and built as `transformer`: that they could is
the positive half for those two; here each role also tries what it must not do."""

from __future__ import annotations

import shutil
import subprocess

import psycopg2
import psycopg2.errors
import pytest

from devtools.databases import Database
from devtools.project import DBT, MARTS, PROJECT_DIR, SAMPLE_DIR

# On the community edition the weekly mart is a continuous aggregate: a view nobody may write
# to (ObjectNotInPrerequisiteState), before any privilege is checked.
DENIED = (
    psycopg2.errors.InsufficientPrivilege,
    psycopg2.errors.ReadOnlySqlTransaction,
    psycopg2.errors.ObjectNotInPrerequisiteState,
)


def denied(db: Database, role: str, statement: str) -> bool:
    """True when the role may not run the statement (and nothing was changed)."""
    conn = db.connect(role)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
        return False
    except DENIED:
        return True
    finally:
        conn.close()


@pytest.mark.editions
def test_the_reader_reads_every_mart(sample_db: Database):
    conn = sample_db.connect("reader")
    try:
        with conn.cursor() as cur:
            for mart in MARTS:
                cur.execute(f"select count(*) from marts.{mart}")
                assert cur.fetchone()[0] > 0, mart
    finally:
        conn.close()


@pytest.mark.editions
@pytest.mark.parametrize(
    "statement",
    [
        "select count(*) from raw.load_log",
        "select count(*) from raw.daily_prices",
        "select count(*) from staging.stg_market_data__daily_prices",
        "select count(*) from intermediate.int_daily_prices__trading_days",
        "select count(*) from seeds.nyse_trading_sessions",
        "delete from marts.fct_price_averages_monthly",
        "update marts.dim_symbols set security_name = 'x'",
        "insert into marts.fct_price_averages_yearly (symbol) values ('X')",
        "create table marts.mine (i int)",
        "create table public.mine (i int)",
        "create temp table mine (i int)",
        "create schema mine",
        "drop view marts.fct_daily_prices",
    ],
)
def test_the_reader_cannot_read_below_the_marts_or_change_anything(sample_db: Database, statement: str):
    assert denied(sample_db, "reader", statement)


@pytest.mark.editions
@pytest.mark.parametrize(
    "statement",
    [
        "select count(*) from marts.fct_price_averages_monthly",
        "delete from marts.fct_price_averages_monthly",
        "drop table marts.fct_price_averages_monthly",
        "select count(*) from staging.stg_market_data__daily_prices",
        "create table marts.mine (i int)",
    ],
)
def test_the_loader_cannot_touch_the_dbt_schemas(sample_db: Database, statement: str):
    assert denied(sample_db, "loader", statement)


@pytest.mark.editions
@pytest.mark.parametrize(
    "statement",
    [
        "insert into raw.load_rejects (load_id, line_number, raw_line, reason_code, reason) "
        "values (1, 1, 'x', 'x', 'x')",
        "delete from raw.daily_prices",
        "update raw.load_log set status = 'rejected'",
        "truncate raw.daily_prices",
        "drop table raw.daily_prices",
        "create table raw.mine (i int)",
    ],
)
def test_the_transformer_reads_raw_but_cannot_write_it(sample_db: Database, statement: str):
    assert denied(sample_db, "transformer", statement)
    conn = sample_db.connect("transformer")
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from raw.daily_prices")
            assert cur.fetchone()[0] == sample_db.scalar("select count(*) from raw.daily_prices")
    finally:
        conn.close()


@pytest.mark.editions
@pytest.mark.parametrize(
    "statement",
    [
        "delete from raw.daily_prices",
        "drop table raw.daily_prices",
        "create table raw.mine (i int)",
        "select count(*) from marts.dim_symbols",
        "create table staging.mine (i int)",
    ],
)
def test_the_streamer_adds_raw_rows_but_has_no_ddl_and_no_marts(sample_db: Database, statement: str):
    assert denied(sample_db, "streamer", statement)
    conn = sample_db.connect("streamer")
    try:
        conn.autocommit = False
        with conn.cursor() as cur:  # what a feed consumer does: log a load, add its rows
            cur.execute(
                "insert into raw.load_log (source_key, file_path, file_kind, symbol, status, load_mode, "
                "started_at) values ('prices/FEED', 'feed', 'prices', 'FEED', 'loaded', 'merge', now()) "
                "returning load_id"
            )
            load_id = cur.fetchone()[0]
            cur.execute(
                "insert into raw.daily_prices (load_id, line_number, date, close) "
                "values (%s, 1, '2021-01-04', '1')",
                (load_id,),
            )
        conn.rollback()  # the shared sample database stays as it was
    finally:
        conn.close()


@pytest.mark.editions
def test_grants_survive_a_rebuild(own_sample_db: Database):
    before = own_sample_db.scalar("select count(*) from marts.fct_price_averages_weekly")
    rebuild = own_sample_db.dbt("run", "-s", "stg_market_data__daily_prices+")
    assert rebuild.returncode == 0, rebuild.stdout[-3000:]
    conn = own_sample_db.connect("reader")
    try:
        with conn.cursor() as cur:
            for mart in MARTS:
                cur.execute(f"select count(*) from marts.{mart}")
                assert cur.fetchone()[0] > 0, mart
            cur.execute("select count(*) from marts.fct_price_averages_weekly")
            assert cur.fetchone()[0] == before
    finally:
        conn.close()


@pytest.mark.editions
def test_everything_the_dbt_build_made_belongs_to_the_transformer(sample_db: Database):
    owners = sample_db.query(
        """
        select distinct n.nspname, pg_get_userbyid(c.relowner)
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('raw', 'staging', 'intermediate', 'marts', 'seeds', 'audit')
           and c.relkind in ('r', 'v', 'm', 'p')
        """
    )
    assert {schema: owner for schema, owner in owners} == {
        "raw": "loader",
        "staging": "transformer",
        "intermediate": "transformer",
        "marts": "transformer",
        "seeds": "transformer",
        "audit": "transformer",
    }


def db_env(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "env", *args], cwd=PROJECT_DIR, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("role", ["loader", "transformer", "reader", "streamer"])
def test_make_env_prints_each_roles_variables(role: str):
    out = db_env(f"ROLE={role}")
    assert out.returncode == 0, out.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    assert exports["PGUSER"] == role
    owner = dict(line.removeprefix("export ").split("=", 1) for line in db_env().stdout.splitlines())
    assert exports["PGPASSWORD"] != owner["PGPASSWORD"]
    assert owner["PGUSER"] != role


def test_make_env_refuses_an_unknown_role():
    out = db_env("ROLE=admin")
    assert out.returncode != 0
    assert "unknown role 'admin'" in out.stderr


@pytest.mark.editions
def test_dbt_works_for_the_owner_as_the_transformer_and_names_the_role_to_anyone_else(fresh_db, tmp_path):
    """The owner's variables (eval "$(make -s env)") build as the transformer (the profile's
    `role`), so a build after `make demo` finds every object its own; a login that is not a
    member of the transformer stops at once with one line naming it."""
    data = tmp_path / "data" / "stocks"
    data.mkdir(parents=True)
    shutil.copy(SAMPLE_DIR / "stocks" / "ABNB.csv", data / "ABNB.csv")
    assert fresh_db.run_loader(tmp_path / "data").returncode == 0
    assert fresh_db.dbt("build").returncode == 0  # as the transformer, as make demo does
    shutil.copy(SAMPLE_DIR / "stocks" / "AAL.csv", data / "AAL.csv")
    assert fresh_db.run_loader(tmp_path / "data").returncode == 0
    as_owner = fresh_db.run([str(DBT), "build"], timeout=900)
    assert as_owner.returncode == 0, as_owner.stdout[-3000:]
    assert fresh_db.scalar("select count(distinct symbol) from marts.fct_daily_prices") == 2
    owners = fresh_db.query(
        "select distinct pg_get_userbyid(relowner) from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in ('staging', 'intermediate', 'marts')"
    )
    assert owners == [("transformer",)]
    as_reader = fresh_db.dbt("build", role="reader")
    assert as_reader.returncode != 0
    assert 'permission denied to set role "transformer"' in as_reader.stdout
