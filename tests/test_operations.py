"""make backup / make restore (scripts/backup.py) and make maintenance (scripts/maintenance.py).

The sample database is backed up, restored into a new database and compared with the source;
the maintenance report is checked against PostgreSQL's and TimescaleDB's own size functions,
and its VACUUM against planted dead rows.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from devtools.databases import Database, create_database, drop_database
from devtools.project import MARTS, PROJECT_DIR

BACKUP = PROJECT_DIR / "scripts" / "backup.py"
MAINTENANCE = PROJECT_DIR / "scripts" / "maintenance.py"
HYPERTABLE = "staging.stg_market_data__daily_prices"


def backup_py(db: Database, *args: str | Path, role: str | None = None) -> subprocess.CompletedProcess[str]:
    return db.run([sys.executable, str(BACKUP), *map(str, args)], timeout=600, role=role)


def maintenance_py(
    db: Database, *args: str | Path, role: str | None = None
) -> subprocess.CompletedProcess[str]:
    return db.run([sys.executable, str(MAINTENANCE), *map(str, args)], timeout=600, role=role)


@pytest.fixture(scope="module")
def backup_file(sample_db: Database, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The sample database backed up as its owner: the file, and what the backup said."""
    proc = backup_py(sample_db, "backup", "--dir", tmp_path_factory.mktemp("backups"))
    assert proc.returncode == 0, proc.stderr
    return PROJECT_DIR / proc.stdout.strip(), proc.stderr  # the file, relative to where it ran


@pytest.fixture(scope="module")
def restored_db(
    backup_file: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A new database (created like every project database: extension, roles' schemas and
    grants, nothing else) with the sample's backup restored into it."""
    db = create_database(tmp_path_factory.mktemp("restored"))
    try:
        proc = backup_py(db, "restore", backup_file[0])
        assert proc.returncode == 0, proc.stderr
        assert f"restored {len(toc_tables(backup_file[0]))} tables into {db.name}" in proc.stderr
        yield db
    finally:
        drop_database(db)


def toc_tables(path: Path) -> list[str]:
    """'schema name' of every table in a dump's table of contents."""
    newest = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_restore"), key=lambda p: int(p.parts[-3]))
    pg_restore = str(newest[-1]) if newest else "pg_restore"
    listing = subprocess.run(
        [pg_restore, "--list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return re.findall(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+ \S+) ", listing, re.MULTILINE)


def rows(db: Database, query: str, role: str | None = None) -> list[tuple]:
    conn = db.connect(role)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def relations(db: Database) -> list[tuple]:
    """Every relation outside PostgreSQL's own schemas (TimescaleDB's included): what a restore
    would have added to."""
    return db.query(
        "select n.nspname, c.relname, c.relkind from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast') order by 1, 2"
    )


# --- backup ---------------------------------------------------------------------------------


@pytest.mark.editions
def test_backup_is_one_whole_private_file_named_by_time(sample_db, backup_file):
    path, stderr = backup_file
    assert re.fullmatch(rf"{sample_db.name}-\d{{8}}T\d{{6}}Z\.dump", path.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no .partial left behind
    # pg_dump's notices on TimescaleDB's catalog are named as expected, not passed on as warnings
    assert "circular foreign keys among TimescaleDB's catalog tables" in stderr
    assert "warning:" not in stderr and "ERROR" not in stderr
    # every hypertable's chunks: staging, the trading days, continuous aggregates' own
    chunks = sample_db.scalar(
        "select count(*) from _timescaledb_catalog.chunk where not dropped and table_name like '_hyper%'"
    )
    assert chunks > 1
    assert sum(1 for t in toc_tables(path) if t.startswith("_timescaledb_internal _hyper_")) == chunks
    assert f"wrote {path}" in stderr


@pytest.mark.editions
def test_backup_refuses_a_database_without_timescaledb(sample_db, tmp_path):
    env = {**sample_db.env, "PGDATABASE": "postgres"}
    proc = subprocess.run(
        [sys.executable, str(BACKUP), "backup", "--dir", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "database postgres has no timescaledb extension" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# --- restore --------------------------------------------------------------------------------


@pytest.mark.editions
def test_restore_reproduces_every_mart_row_for_row(sample_db, restored_db):
    """Every mart, all rows and all columns, read as the reader role on both databases (so the
    reader's grants came through the restore too)."""
    marts = {
        name
        for (name,) in sample_db.query(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        )
    }
    assert marts >= set(MARTS)
    for mart in sorted(marts):
        columns = (
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = 'marts' and table_name = '{mart}' order by ordinal_position"
        )
        assert restored_db.query(columns) == sample_db.query(columns), mart
        ordered = ", ".join(str(i + 1) for i in range(len(sample_db.query(columns))))
        query = f"select * from marts.{mart} order by {ordered}"
        source = rows(sample_db, query, role="reader")
        assert source, f"marts.{mart} is empty in the source"
        assert rows(restored_db, query, role="reader") == source, mart


@pytest.mark.editions
def test_restore_keeps_every_raw_row(sample_db, restored_db):
    tables = [
        t for (t,) in sample_db.query("select tablename from pg_tables where schemaname = 'raw' order by 1")
    ]
    assert {"daily_prices", "symbols_meta", "load_log", "load_rejects"} <= set(tables)
    for table in tables:
        count = f"select count(*) from raw.{table}"
        assert restored_db.scalar(count) == sample_db.scalar(count), table
    assert restored_db.scalar("select count(*) from raw.daily_prices") > 100_000


@pytest.mark.editions
def test_restored_staging_is_a_hypertable_with_its_chunks(sample_db, restored_db):
    def chunks(db: Database) -> list[tuple]:
        return db.query(
            "select range_start, range_end, is_compressed from timescaledb_information.chunks "
            "where format('%%I.%%I', hypertable_schema, hypertable_name) = %s order by 1",
            (HYPERTABLE,),
        )

    assert (
        restored_db.scalar(
            "select count(*) from timescaledb_information.hypertables "
            "where hypertable_schema = 'staging' and hypertable_name = 'stg_market_data__daily_prices'"
        )
        == 1
    )
    source_chunks = chunks(sample_db)
    assert len(source_chunks) > 1
    assert chunks(restored_db) == source_chunks
    assert restored_db.scalar(f"select count(*) from show_chunks('{HYPERTABLE}')") == len(source_chunks)
    count = f"select count(*) from {HYPERTABLE}"
    assert restored_db.scalar(count) == sample_db.scalar(count)
    # timescaledb_post_restore() ran: new sessions are out of restore mode
    assert rows(restored_db, "show timescaledb.restoring") == [("off",)]


@pytest.mark.editions
def test_restore_keeps_owners_and_privileges(sample_db, restored_db):
    owners = (
        "select n.nspname, c.relname, pg_get_userbyid(c.relowner) from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'v', 'm', 'p') "
        "and n.nspname in ('raw', 'staging', 'intermediate', 'marts', 'seeds', 'audit') order by 1, 2"
    )
    assert restored_db.query(owners) == sample_db.query(owners)
    assert {owner for schema, _, owner in restored_db.query(owners) if schema == "raw"} == {"loader"}
    access = (
        "select r, has_database_privilege(r, current_database(), 'CONNECT'), "
        "has_database_privilege(r, current_database(), 'CREATE') "
        "from unnest(array['loader', 'transformer', 'reader', 'streamer']) r order by 1"
    )
    assert restored_db.query(access) == sample_db.query(access)
    assert restored_db.scalar("select datacl is not null from pg_database where datname = current_database()")
    conn = restored_db.connect("reader")
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select count(*) from raw.daily_prices")
    finally:
        conn.close()


@pytest.mark.editions
def test_dbt_build_on_the_restored_database_matches_the_source(sample_db, restored_db):
    """dbt build (as the transformer) succeeds on the restored database, every node with the
    status and failing-row count it had when the source was built; but the tests scoped to
    the changes, which remember what they saw pass on the source: nothing is new to them."""
    build = restored_db.dbt("build")
    assert build.returncode == 0, build.stdout[-5000:]

    def outcome(results: dict) -> dict[str, tuple]:
        return {r["unique_id"]: (r["status"], r["failures"]) for r in results["results"]}

    results = restored_db.dbt_results()
    scoped = {
        r["unique_id"] for r in results["results"] if "pg_visible_in_snapshot" in (r["compiled_code"] or "")
    }
    assert len(scoped) >= 10
    restored, source = outcome(results), outcome(sample_db.build_results)
    assert {node: restored[node] for node in scoped} == dict.fromkeys(scoped, ("pass", 0))
    assert {node: out for node, out in restored.items() if node not in scoped} == {
        node: out for node, out in source.items() if node not in scoped
    }
    assert {status for status, _ in restored.values()} >= {"success", "pass"}


@pytest.mark.editions
def test_restore_refuses_a_database_that_is_not_empty(backup_file, fresh_db):
    fresh_db.query("create table public.keep_me as select 42 as answer")
    before = relations(fresh_db)
    schemas = fresh_db.query("select nspname, nspowner from pg_namespace order by 1")
    proc = backup_py(fresh_db, "restore", backup_file[0])
    assert proc.returncode == 1
    assert f"database {fresh_db.name} is not empty: 1 object (1 in public)" in proc.stderr
    assert "never overwrites one" in proc.stderr
    assert relations(fresh_db) == before
    assert fresh_db.query("select answer from public.keep_me") == [(42,)]
    assert fresh_db.query("select nspname, nspowner from pg_namespace order by 1") == schemas
    assert rows(fresh_db, "show timescaledb.restoring") == [("off",)]


@pytest.mark.editions
def test_a_failed_restore_leaves_the_database_as_empty_as_before(backup_file, fresh_db, tmp_path):
    broken = tmp_path / "broken.dump"
    data = backup_file[0].read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the table of contents reads, the data ends early
    before = relations(fresh_db)
    proc = backup_py(fresh_db, "restore", broken)
    assert proc.returncode == 1
    assert "pg_restore failed" in proc.stderr and "nothing was restored" in proc.stderr
    assert relations(fresh_db) == before
    assert rows(fresh_db, "show timescaledb.restoring") == [("off",)]

    # into a database the restore creates: it is dropped again
    new_name = f"{fresh_db.name}_new"
    try:
        proc = backup_py(fresh_db, "restore", broken, "--dbname", new_name)
        assert proc.returncode == 1
        assert f"dropped database {new_name} again" in proc.stderr
        assert fresh_db.scalar("select count(*) from pg_database where datname = %s", (new_name,)) == 0
    finally:
        fresh_db.query(f'drop database if exists "{new_name}"')


@pytest.mark.editions
def test_restore_without_a_superuser_refuses_before_changing_anything(backup_file, fresh_db):
    """As the owner, on a server that is not the project cluster (here: the cluster said to be
    on another port), there is no superuser to run timescaledb_pre_restore() with."""
    before = relations(fresh_db)
    proc = subprocess.run(
        [sys.executable, str(BACKUP), "restore", str(backup_file[0])],
        env={**fresh_db.env, "STOCK_ANALYTICS_PG_PORT": "1"}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "restoring needs a superuser" in proc.stderr and "set PGUSER and PGPASSWORD" in proc.stderr
    assert relations(fresh_db) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"not a dump\n", "is not a readable pg_dump custom-format archive")],
)
def test_restore_refuses_a_file_that_is_not_a_backup(fresh_db, tmp_path, content, message):
    path = tmp_path / "x.dump"
    if content is not None:
        path.write_bytes(content)
    before = relations(fresh_db)
    proc = backup_py(fresh_db, "restore", path)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert relations(fresh_db) == before


# --- maintenance report ---------------------------------------------------------------------


def report(
    db: Database, tmp_path: Path, *args: str, role: str | None = None
) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path / f"report-{time.monotonic_ns()}.json"
    proc = maintenance_py(db, "--json", out, *args, role=role)
    return proc, json.loads(out.read_text()) if out.exists() else {}


@pytest.mark.editions
def test_report_sizes_and_chunks_match_the_database(restored_db, tmp_path):
    # Vacuumed first, so that autovacuum does not add visibility maps between report and check.
    restored_db.query("vacuum")
    proc, data = report(restored_db, tmp_path, "--all")
    assert proc.returncode == 0, proc.stderr
    tables = {t["name"]: t for t in data["tables"]}

    ht = tables[HYPERTABLE]
    chunks = restored_db.scalar(f"select count(*) from show_chunks('{HYPERTABLE}')")
    assert ht["kind"] == "hypertable" and ht["chunks"] == chunks > 1
    assert ht["total_bytes"] == restored_db.scalar(
        f"select pg_total_relation_size('{HYPERTABLE}') "
        f"+ (select sum(pg_total_relation_size(c)) from show_chunks('{HYPERTABLE}') c)"
    )
    assert ht["total_bytes"] == ht["table_bytes"] + ht["index_bytes"] + ht["toast_bytes"]
    (hypertable,) = [h for h in data["hypertables"] if h["name"] == HYPERTABLE]
    assert hypertable["chunks"] == chunks and hypertable["compressed_chunks"] == 0

    plain = {name: t for name, t in tables.items() if t["kind"] != "hypertable"}
    assert {"raw.daily_prices", "marts.dim_symbols", "seeds.nyse_trading_sessions"} <= set(plain)
    actual = dict(
        restored_db.query(
            "select n, pg_total_relation_size(n::regclass) from unnest(%s::text[]) n", (list(plain),)
        )
    )
    assert {name: t["total_bytes"] for name, t in plain.items()} == actual
    for t in plain.values():
        assert t["total_bytes"] == t["table_bytes"] + t["index_bytes"] + t["toast_bytes"], t["name"]

    text = proc.stdout
    assert re.search(rf"^{re.escape(HYPERTABLE)} +hypertable \({chunks} chunks\)", text, re.MULTILINE)
    assert re.search(rf"^{re.escape(HYPERTABLE)} +{chunks} +0 of {chunks} +365 days", text, re.MULTILINE)
    if data["license"] == "apache":
        assert "compression is not available under the apache license" in text
    assert "Unused indexes" in text and "Vacuum and analyze" in text


@pytest.fixture
def planted_db(fresh_db: Database) -> Database:
    """A project database with: raw.planted (owned by the loader, as raw is) with half its
    rows deleted; public.clean, vacuumed and analyzed, with a primary key, an index queries use
    and one they never use; public.ticks, a hypertable whose first chunk lost most rows.
    Autovacuum is off on all of them, so that only the script vacuums."""
    statements = [
        "create table raw.planted as select g as id, md5(g::text) payload from generate_series(1, 20000) g",
        "alter table raw.planted owner to loader",
        "create table public.clean as select g as id, g % 100 as bucket, g % 7 as idle "
        "from generate_series(1, 20000) g",
        "alter table public.clean add primary key (id)",
        "create index clean_bucket_idx on public.clean (bucket)",
        "create index clean_idle_idx on public.clean (idle)",
        "create table public.ticks (day date not null, value int)",
        "select create_hypertable('public.ticks', 'day', chunk_time_interval => interval '30 days')",
        "insert into public.ticks select date '2024-01-01' + (g % 90), g from generate_series(1, 30000) g",
    ]
    for sql in statements:
        fresh_db.query(sql)
    for table in [
        "raw.planted",
        "public.clean",
        *(c for (c,) in fresh_db.query("select show_chunks('public.ticks')::text")),
    ]:
        fresh_db.query(f"alter table {table} set (autovacuum_enabled = off)")
    # Pending row counts reach the statistics before ANALYZE overwrites them, not after.
    fresh_db.query("select pg_stat_force_next_flush()")
    fresh_db.query("vacuum analyze raw.planted, public.clean, public.ticks")
    fresh_db.query(
        "set enable_seqscan = off; select count(*) from public.clean where bucket = 3; reset enable_seqscan"
    )
    fresh_db.query("delete from raw.planted where id % 2 = 0")
    fresh_db.query("delete from public.ticks where day < date '2024-01-10'")  # in the first chunk only
    fresh_db.query("select pg_stat_force_next_flush()")
    wait_for_dead_rows(fresh_db, "raw.planted", 10000)
    return fresh_db


def wait_for_dead_rows(db: Database, table: str, expected: int) -> None:
    """Deletes reach the statistics when the deleting session flushes them."""
    for _ in range(100):
        if (
            db.scalar("select n_dead_tup from pg_stat_user_tables where relid = %s::regclass", (table,))
            == expected
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"{table} never showed {expected} dead rows")


def dead_rows(db: Database, table: str) -> int:
    return db.scalar("select n_dead_tup from pg_stat_user_tables where relid = %s::regclass", (table,))


def test_vacuum_runs_where_dead_rows_pay_and_skips_clean_tables(planted_db, tmp_path):
    first_chunk = planted_db.scalar(
        "select format('%I.%I', chunk_schema, chunk_name) from timescaledb_information.chunks "
        "where hypertable_name = 'ticks' order by range_start limit 1"
    )
    proc, data = report(planted_db, tmp_path, "--vacuum")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    vacuums = {f"{v['schema']}.{v['name']}": v for v in data["vacuums"]}

    planted = vacuums["raw.planted"]
    assert planted["reason"] == "10,000 dead rows (50%)"
    assert (planted["status"], planted["dead_before"], planted["dead_after"]) == ("vacuumed", 10000, 0)
    assert dead_rows(planted_db, "raw.planted") == 0
    assert planted_db.scalar(
        "select last_vacuum is not null from pg_stat_user_tables where relid = 'raw.planted'::regclass"
    )

    assert "public.clean" not in vacuums  # clean: left alone
    assert (
        planted_db.scalar(
            "select vacuum_count from pg_stat_user_tables where relid = 'public.clean'::regclass"
        )
        == 1
    )

    # the hypertable: only the chunk that lost rows
    chunk_vacuums = [v for v in data["vacuums"] if v["table"] == "public.ticks"]
    assert [f"{v['schema']}.{v['name']}" for v in chunk_vacuums] == [first_chunk]
    assert chunk_vacuums[0]["status"] == "vacuumed" and dead_rows(planted_db, first_chunk) == 0

    assert re.search(
        r"^raw\.planted +10,000 dead rows \(50%\) +vacuumed in [\d.]+ s: dead rows 10,000 -> 0$",
        proc.stdout,
        re.MULTILINE,
    )
    assert re.search(rf"^public\.ticks chunk {first_chunk.split('.')[1]} ", proc.stdout, re.MULTILINE)

    indexes = {i["name"]: i for i in data["indexes"]}
    assert (
        indexes["public.clean_idle_idx"]["unused"]
        and "public.clean_idle_idx" in proc.stdout.split("Unused indexes")[1]
    )
    assert (
        not indexes["public.clean_bucket_idx"]["unused"] and indexes["public.clean_bucket_idx"]["scans"] >= 1
    )
    assert indexes["public.clean_pkey"]["scans"] == 0 and not indexes["public.clean_pkey"]["unused"]


def test_report_alone_changes_nothing(planted_db, tmp_path):
    proc, data = report(planted_db, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {v["status"] for v in data["vacuums"]} == {"planned"}
    assert "would vacuum (run with --vacuum)" in proc.stdout
    assert dead_rows(planted_db, "raw.planted") == 10000


def test_vacuum_as_a_role_that_may_not_says_so_and_exits_2(planted_db, tmp_path):
    proc, data = report(planted_db, tmp_path, "--vacuum", role="reader")
    assert proc.returncode == 2, proc.stderr + proc.stdout
    (planted,) = [v for v in data["vacuums"] if v["name"] == "planted"]
    assert planted["status"] == "skipped"
    assert "SKIPPED: needs the owner (loader), the database owner or a superuser" in proc.stdout
    assert dead_rows(planted_db, "raw.planted") == 10000


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["--share", "0"], {}, 1, "--share must be in (0, 1]"),
        ([], {"PGPORT": "1"}, 1, "cannot connect"),
    ],
)
def test_maintenance_bad_input(fresh_db, args, env, code, message):
    proc = subprocess.run(
        [sys.executable, str(MAINTENANCE), *args],
        env={**fresh_db.env, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == code
    assert message in proc.stderr
