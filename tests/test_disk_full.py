"""A disk that fills up, for real (a small tmpfs, filled to ENOSPC): each write the product makes
fails in one line that names the file and says nothing stored was lost, which is then true;
once space is freed, everything reads again and the next run goes on (nothing is "damaged").
A read-only file system and a file the system will not let be written are one line each too.

The warehouse, GX's stores, the Data Docs, a report and the landing area each get the full
disk in turn, the rest staying on the ordinary one: a folder of the product's can be a symbolic
link to the small disk.
"""

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from support import SMALL_GRID, STUDY_HEADER, assert_one_line_error, cli, environment, fill

WAREHOUSE = "warehouse.duckdb"


def cohort_csv(path: Path, n: int, offset: int = 0) -> Path:
    rows = [
        f"https://www.instagram.com/acct.{i:03d}/,10,{1000 + 137 * i},5,1,0,{30 + 3 * (i % 17)},{2 + i % 5},0,0,0,0"
        for i in range(offset, offset + n)
    ]
    path.write_text(STUDY_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def rows(path: Path, sql: str):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A warehouse with one import, one snapshot, its copy: made by the CLI, copied by each test."""
    folder = tmp_path_factory.mktemp("disk-full")
    with environment(SMALL_GRID):
        for args in (["import-csv", cohort_csv(folder / "c.csv", 60), "--as-of", "2026-11-01"], ["recluster"]):
            result = cli(*args, "-w", folder / "data" / WAREHOUSE)
            assert result.returncode == 0, result.stderr
    return folder / "data"


@pytest.fixture
def data(built, tmp_path, small_grid):
    return Path(shutil.copytree(built, tmp_path / "data"))


def snapshots(warehouse: Path) -> list[int]:
    return [v for (v,) in rows(warehouse, "SELECT version FROM clusters.snapshots ORDER BY version")]


@pytest.mark.parametrize("room", [0, 96 * 1024, 400 * 1024], ids=["none", "96KiB", "400KiB"])
def test_a_full_warehouse_disk_during_a_recluster_is_named_and_reads_again_once_freed(data, small_disk, room):
    moved = Path(shutil.copytree(data, small_disk / "data"))
    warehouse = moved / WAREHOUSE
    filler = fill(small_disk, room)

    result = cli("recluster", "--force", "-w", warehouse)

    # Either the snapshot's transaction failed (nothing stored), or it was stored and the copy
    # could not be published: the line says which, and (below) it is true.
    stored = "snapshot 2: stored in the warehouse" in result.stderr
    assert_one_line_error(result, "no space left on the disk of", "publishing" if stored else "nothing stored was lost")
    assert "damaged" not in result.stderr
    filler.unlink()
    assert snapshots(warehouse) == ([1, 2] if stored else [1])
    shown = cli("show", "-w", warehouse)
    assert shown.returncode == 0, shown.stderr
    again = cli("recluster", "--force", "-w", warehouse)
    assert again.returncode == 0, again.stderr
    assert snapshots(warehouse)[-1] == (3 if stored else 2)
    assert rows(moved / "analytics.duckdb", "SELECT max(version) FROM clusters.snapshots") == [
        (snapshots(warehouse)[-1],)
    ]


def test_a_full_disk_under_gx_stores_fails_the_validation_once_and_leaves_nothing_half_written(
    data, small_disk, tmp_path
):
    """GX writes its validation results in place: the half-written one is removed, the import
    stays stored (unvalidated, so out of features), and the next run validates it."""
    shutil.move(data / "gx_validations", small_disk / "gx")
    (data / "gx_validations").symlink_to(small_disk / "gx")
    filler = fill(small_disk, 0)

    result = cli(
        "import-csv", cohort_csv(tmp_path / "more.csv", 40, offset=60), "--as-of", "2026-11-02", "-w", data / WAREHOUSE
    )

    assert_one_line_error(result, f"no space left on the disk of {small_disk / 'gx'}")
    unreadable = []
    for path in (small_disk / "gx").rglob("*.json"):
        try:
            json.loads(path.read_bytes())
        except ValueError:
            unreadable.append(path)
    assert unreadable == []
    # Stored, but not validated: staging does not read it.
    assert rows(data / WAREHOUSE, "SELECT count(*) FROM staging.unvalidated_crawls") == [(1,)]
    filler.unlink()
    features = cli("features", "-w", data / WAREHOUSE)
    assert features.returncode == 0, features.stderr
    assert "validated crawl 2 (not validated before): passed" in features.stdout
    assert rows(data / WAREHOUSE, "SELECT count(*) FROM staging.unvalidated_crawls") == [(0,)]


def test_a_full_disk_under_the_data_docs_is_named(data, small_disk, tmp_path, monkeypatch):
    monkeypatch.setenv("KIC_DATA_DOCS", "true")
    shutil.rmtree(data / "data_docs", ignore_errors=True)
    (small_disk / "docs").mkdir()
    (data / "data_docs").symlink_to(small_disk / "docs")
    filler = fill(small_disk, 0)

    result = cli(
        "import-csv", cohort_csv(tmp_path / "more.csv", 40, offset=60), "--as-of", "2026-11-02", "-w", data / WAREHOUSE
    )

    assert_one_line_error(result, f"no space left on the disk of {small_disk / 'docs'}")
    filler.unlink()
    again = cli("features", "-w", data / WAREHOUSE)
    assert again.returncode == 0, again.stderr
    assert (small_disk / "docs" / "index.html").is_file()


def test_a_report_onto_a_full_disk_is_named_and_leaves_no_file(data, small_disk):
    fill(small_disk, 0)
    result = cli("report", "-o", small_disk / "report.html", "-w", data / WAREHOUSE)
    assert_one_line_error(result, f"no space left on the disk of {small_disk / 'report.html'}")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("room", [0, 24 * 1024], ids=["none", "24KiB"])
def test_an_import_onto_a_full_landing_disk_is_named_and_lands_nothing(data, small_disk, tmp_path, monkeypatch, room):
    """An import goes through the landing area: a disk that takes only part of it leaves no part
    for a later load to find, and nothing in the warehouse."""
    landing = small_disk / "landing"
    monkeypatch.setenv("KIC_LANDING_URL", str(landing))
    filler = fill(small_disk, room)
    result = cli(
        "import-csv", cohort_csv(tmp_path / "more.csv", 400, offset=60), "--as-of", "2026-11-02", "-w", data / WAREHOUSE
    )
    assert_one_line_error(result, "no space left on the disk of", str(landing))
    assert not [p for p in landing.rglob("*") if p.is_file()]
    assert rows(data / WAREHOUSE, "SELECT count(*) FROM raw.crawl_runs") == [(1,)]  # the fixture's import only
    filler.unlink()
    again = cli("import-csv", tmp_path / "more.csv", "--as-of", "2026-11-02", "-w", data / WAREHOUSE)
    assert again.returncode == 0, again.stderr
    assert rows(data / WAREHOUSE, "SELECT count(*), sum(accounts_ok) FROM raw.crawl_runs") == [(2, 460)]


@pytest.mark.e2e
def test_a_full_landing_disk_stops_the_crawl_at_once_in_one_line(tmp_path, small_disk, monkeypatch):
    """The crawler stops at its first refused batch and says why on its progress channel: one
    attempt, not a crawl of every account into a disk that takes none; what landed is loaded."""
    from sandbox.server import Sandbox
    from sandbox.settings import SandboxSettings

    landing = small_disk / "landing"
    sandbox = SandboxSettings(influencers=600, seed=5, date=date(2026, 6, 1))
    with Sandbox(sandbox) as server:
        monkeypatch.setenv("KIC_WEB_BASE_URL", server.url)
        monkeypatch.setenv("KIC_LANDING_URL", str(landing))
        for name, value in server.client_quotas().items():  # paced by the sandbox's quotas, as by a real source's
            monkeypatch.setenv(f"KIC_QUOTAS__{name.upper()}", str(value))
        warehouse = tmp_path / "data" / WAREHOUSE
        added = cli("accounts", "add", *[a.username for a in server.population.accounts], "-w", warehouse)
        assert added.returncode == 0, added.stderr
        filler = fill(small_disk, 150 * 1024)  # a batch or so
        result = cli("crawl", "--date", "2026-06-01", "-w", warehouse)
    assert_one_line_error(result, "no space left on the disk of", str(landing))
    logs = list((tmp_path / "data" / "logs").glob("crawl-*.log"))
    assert len(logs) == 1  # one crawler launched: a full disk is not retried
    assert not [p for p in landing.rglob(".*") if p.is_file()]  # no temporary file left
    filler.unlink()
    loaded = cli("load", "-w", warehouse)
    assert loaded.returncode == 0, loaded.stderr
    ((requested, outcomes),) = rows(
        warehouse,
        "SELECT accounts_requested, (SELECT count(*) FROM raw.account_outcomes) FROM raw.crawl_runs",
    )
    assert requested == outcomes == 600  # every account has an outcome: crawled, or not crawled and why


def test_a_read_only_file_system_is_named_and_reading_still_works(data, small_disk):
    import subprocess

    moved = Path(shutil.copytree(data, small_disk / "data"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        result = cli("recluster", "--force", "-w", moved / WAREHOUSE)
        assert_one_line_error(result, str(moved / WAREHOUSE), "read-only")
        shown = cli("show", "-w", moved / WAREHOUSE)  # reading needs no write
        assert shown.returncode == 0, shown.stderr
        exported = cli("export", "-o", small_disk / "mine.csv", "-w", moved / WAREHOUSE)
        assert_one_line_error(exported, f"cannot write {small_disk / 'mine.csv'}", "read-only")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)


def test_a_warehouse_the_system_will_not_let_be_written_is_named(data):
    """Root may write any file but an immutable one (chattr +i): as a permission error looks."""
    import subprocess

    warehouse = data / WAREHOUSE
    if subprocess.run(["chattr", "+i", str(warehouse)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        result = cli("recluster", "--force", "-w", warehouse)
        assert_one_line_error(result, str(warehouse), "permission denied")
    finally:
        subprocess.run(["chattr", "-i", str(warehouse)], check=True)
    assert snapshots(warehouse) == [1]
