"""Both TimescaleDB editions: the installer's source-archive path, which license each test
server has and what it allows, and how a run reports the tests its server's edition cannot run."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg2
import pytest

from devtools.databases import Database, timescaledb_license
from devtools.project import PROJECT_DIR
from tests import support

INSTALLER = PROJECT_DIR / "scripts" / "install_timescaledb.sh"
PKGLIBDIR = Path(
    subprocess.run(
        ["/usr/lib/postgresql/15/bin/pg_config", "--pkglibdir"], capture_output=True, text=True, check=True
    ).stdout.strip()
)
VENDOR_ARCHIVES = sorted((PROJECT_DIR.parent / "shared" / "vendor").glob("timescaledb-*.tar.gz"))
BUILD_FLAGS = ("-DREGRESS_CHECKS=OFF", "-DTAP_CHECKS=OFF", "-DWARNINGS_AS_ERRORS=OFF", "-DUSE_TELEMETRY=OFF")


def make_archive(path: Path, files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> Path:
    """A .tar.gz holding these files (name -> content)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = (modes or {}).get(name, 0o644)
            tar.addfile(info, io.BytesIO(data))
    return path


def source_archive(path: Path, version: str, extra: dict[str, str] | None = None, **kw) -> Path:
    """A stand-in for an upstream source archive: version.config and tsl/, nothing to build."""
    top = f"timescaledb-{version}"
    files = {
        f"{top}/version.config": f"version = {version}\nupdate_from_version = 0.0.0\n",
        f"{top}/tsl/README.md": "the Timescale License part\n",
        **{f"{top}/{name}": text for name, text in (extra or {}).items()},
    }
    return make_archive(path, files, **kw)


def install(tmp_path: Path, **env: str | Path) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("TIMESCALEDB_")}
    run_env |= {"TIMESCALEDB_BUILD_DIR": str(tmp_path / "build"), **{k: str(v) for k, v in env.items()}}
    return subprocess.run(
        ["bash", str(INSTALLER)], env=run_env, capture_output=True, text=True, timeout=600, check=False
    )


def installed_community_version() -> str:
    found = sorted(PKGLIBDIR.glob("timescaledb-tsl-*.so"))
    assert found, f"no timescaledb-tsl-<version>.so in {PKGLIBDIR}"
    return found[-1].name.removeprefix("timescaledb-tsl-").removesuffix(".so")


def installed_files() -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in PKGLIBDIR.glob("timescaledb*.so")}


# --- the installer -------------------------------------------------------------------------


@pytest.mark.community
@pytest.mark.parametrize(
    "archive",
    ["made here", *(str(p) for p in VENDOR_ARCHIVES)],
    ids=["archive-of-the-installed-version", *(p.name for p in VENDOR_ARCHIVES)],
)
def test_the_installer_returns_at_once_when_the_archives_edition_is_installed(tmp_path, archive):
    if archive == "made here":
        archive = source_archive(tmp_path / "src.tar.gz", installed_community_version())
    before = installed_files()
    started = time.monotonic()
    proc = install(tmp_path, TIMESCALEDB_SOURCE=archive)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 10
    assert "community edition already installed" in proc.stdout
    assert not (tmp_path / "build").exists(), "nothing was unpacked or built"
    assert installed_files() == before, "no installed file was replaced"


def test_the_installer_keeps_the_installed_edition_when_no_source_is_given(tmp_path):
    before = installed_files()
    proc = install(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "TimescaleDB already installed" in proc.stdout
    assert installed_files() == before


FAKE_BOOTSTRAP = """#!/usr/bin/env bash
# Records how the installer called it, then makes a build/ whose install stages one file.
printf '%s\\n' "$@" > "$RECORD/args"
cat notes.txt > "$RECORD/notes"
mkdir -p build
printf 'all:\\n\\ttrue\\ninstall:\\n\\tmkdir -p $(DESTDIR)%s\\n' "$TARGET" > build/Makefile
printf '\\tprintf new > $(DESTDIR)%s/timescaledb-fake.so\\n' "$TARGET" >> build/Makefile
"""
NOTES_PATCH = """--- a/notes.txt
+++ b/notes.txt
@@ -1 +1 @@
-unpatched
+patched
"""


def test_an_archive_not_installed_is_patched_built_with_tsl_and_installed_by_rename(tmp_path):
    """A version that is not installed gets built (tsl/ included, the given patches applied)
    and its staged files are renamed into place: a reader of the old file keeps it."""
    record, target = tmp_path / "record", tmp_path / "lib"
    record.mkdir()
    target.mkdir()
    old = target / "timescaledb-fake.so"
    old.write_text("old")
    old_inode = old.stat().st_ino
    archive = source_archive(
        tmp_path / "timescaledb-0.0.0.tar.gz",
        "0.0.0",
        {"bootstrap": FAKE_BOOTSTRAP, "notes.txt": "unpatched\n"},
        modes={"timescaledb-0.0.0/bootstrap": 0o755},
    )
    patch = tmp_path / "notes.patch"
    patch.write_text(NOTES_PATCH)
    with old.open() as reader:  # as a server that mapped the old .so
        proc = install(
            tmp_path, TIMESCALEDB_SOURCE=archive, TIMESCALEDB_PATCHES=patch, RECORD=record, TARGET=target
        )
        assert reader.read() == "old"
    assert "Building the TimescaleDB 0.0.0 community edition" in proc.stdout
    args = (record / "args").read_text().split()
    assert set(BUILD_FLAGS) <= set(args)
    assert not [a for a in args if "APACHE_ONLY" in a]
    assert "-DPG_CONFIG=/usr/lib/postgresql/15/bin/pg_config" in args
    assert (record / "notes").read_text() == "patched\n"
    assert old.read_text() == "new" and old.stat().st_ino != old_inode, "replaced by a rename"
    assert sorted(p.name for p in target.iterdir()) == ["timescaledb-fake.so"], "no temporary file left"
    # The stand-in builds no TSL module, and the installer says so instead of claiming success.
    assert proc.returncode == 1
    assert f"the build finished but timescaledb-tsl-0.0.0.so is not in {PKGLIBDIR}" in proc.stderr


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such readable file"),
        ("not-an-archive", "is not a readable .tar.gz archive"),
        ("no-version", "is not a TimescaleDB source archive (no <folder>/version.config)"),
        ("no-tsl", "has no tsl/ folder, so it can only build the Apache edition"),
        ("missing-patch", "TIMESCALEDB_PATCHES: no such readable patch file"),
    ],
)
def test_the_installer_refuses_a_bad_source_with_a_clear_error(tmp_path, case, message):
    env: dict[str, str | Path] = {"TIMESCALEDB_SOURCE": tmp_path / "timescaledb-9.9.9.tar.gz"}
    if case == "not-an-archive":
        (tmp_path / "timescaledb-9.9.9.tar.gz").write_text("hello")
    elif case == "no-version":
        make_archive(tmp_path / "timescaledb-9.9.9.tar.gz", {"timescaledb-9.9.9/tsl/x.c": ""})
    elif case == "no-tsl":
        make_archive(
            tmp_path / "timescaledb-9.9.9.tar.gz", {"timescaledb-9.9.9/version.config": "version = 9.9.9\n"}
        )
    elif case == "missing-patch":
        source_archive(tmp_path / "timescaledb-9.9.9.tar.gz", "9.9.9")
        env["TIMESCALEDB_PATCHES"] = tmp_path / "nowhere.patch"
    before = installed_files()
    proc = install(tmp_path, **env)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert proc.stderr.startswith("[install] ERROR: ")
    assert installed_files() == before and not (tmp_path / "build").exists()


# --- the test servers' editions ------------------------------------------------------------


@pytest.mark.editions
def test_the_server_reports_the_license_this_pass_expects(fresh_db: Database, server_license):
    assert server_license in support.LICENSES
    assert timescaledb_license(fresh_db) == server_license
    expected = os.environ.get(support.EXPECTED_LICENSE_VAR)
    if expected:  # set by `make test`: 'timescale' on CI's community server, 'apache' on the other
        assert server_license == expected


def hypertable_with_a_chunk(db: Database) -> None:
    db.query("create table prices (trade_date date not null, close float8)")
    db.query("select create_hypertable('prices', by_range('trade_date', interval '1 month'))")
    db.query(
        "insert into prices select d, 1.0 from generate_series(date '2024-01-01', '2024-01-20', '1 day') d"
    )


CAGG = (
    "create materialized view monthly with (timescaledb.continuous) as "
    "select time_bucket('1 month', trade_date) as month, avg(close) as avg_close "
    "from prices group by 1 with no data"
)


@pytest.mark.community
def test_the_community_edition_compresses_and_aggregates_continuously(fresh_db: Database):
    assert timescaledb_license(fresh_db) == "timescale"
    hypertable_with_a_chunk(fresh_db)
    fresh_db.query("alter table prices set (timescaledb.compress)")
    fresh_db.query("select compress_chunk(c) from show_chunks('prices') c")
    stats = fresh_db.query("select compression_status from chunk_compression_stats('prices')")
    assert len(stats) == fresh_db.scalar("select count(*) from show_chunks('prices')") >= 1
    assert {status for (status,) in stats} == {"Compressed"}
    fresh_db.query(CAGG)
    fresh_db.query("call refresh_continuous_aggregate('monthly', null, null)")  # autocommit connection
    assert fresh_db.query("select month::text, avg_close from monthly") == [("2024-01-01", 1.0)]


@pytest.mark.apache
def test_the_apache_edition_refuses_compression_and_continuous_aggregates(fresh_db: Database):
    assert timescaledb_license(fresh_db) == "apache"
    hypertable_with_a_chunk(fresh_db)
    for sql in ("alter table prices set (timescaledb.compress)", CAGG):
        with pytest.raises(psycopg2.Error, match='not supported under the current "apache" license'):
            fresh_db.query(sql)
    assert fresh_db.scalar("select count(*) from show_chunks('prices')") >= 1  # hypertables work
    assert fresh_db.scalar("select count(*) from prices") == 20


# --- what a run says about the tests its server cannot run --------------------------------


@pytest.mark.editions
def test_a_run_says_once_which_editions_tests_did_not_run(server_license, tmp_path):
    """A pytest run of one community and one apache test on this server: the test of the other
    edition is deselected and the run names it in one line."""
    nodes = [
        f"{Path(__file__).name}::test_the_community_edition_compresses_and_aggregates_continuously",
        f"{Path(__file__).name}::test_the_apache_edition_refuses_compression_and_continuous_aggregates",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(f"tests/{n}" for n in nodes)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"\b1 passed, 1 deselected\b", proc.stdout), proc.stdout[-3000:]
    community_note = proc.stdout.count("community tests did not run")
    apache_note = proc.stdout.count("apache tests did not run here")
    if server_license == "apache":
        assert (community_note, apache_note) == (1, 0)
        assert "1 test needs the TimescaleDB community edition (license 'timescale')" in proc.stdout
        assert "TIMESCALEDB_SOURCE=" in proc.stdout, "the line says how to get the community edition"
    else:
        assert (community_note, apache_note) == (0, 1)
        assert "1 test checks the Apache edition" in proc.stdout and "make test-apache" in proc.stdout


def test_the_deselection_rules_and_lines():
    assert support.missing_edition({"community"}, "apache") == "community"
    assert support.missing_edition({"community"}, "timescale") is None
    assert support.missing_edition({"apache", "editions"}, "timescale") == "apache"
    assert support.missing_edition({"apache"}, "apache") is None
    assert support.missing_edition({"editions", "slow"}, "apache") is None
    assert support.missing_edition({"community"}, None) == "community"  # no TimescaleDB at all
    line = support.deselection_note("community", 3, "apache")
    assert line.startswith("community tests did not run: 3 tests need the TimescaleDB community edition")
    assert "\n" not in line and "license is 'apache'" in line
