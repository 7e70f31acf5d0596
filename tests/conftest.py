"""The suite's fixtures, and the hooks that mark and place its tests. What tests import by name
(crafted rows, the command line, checks) is in support.py.

Fixtures import the product inside their bodies: nothing of it is imported before
pytest_configure has set the test processes up."""

import gc
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest

INNER_LOOP = "not e2e"
# Where tests write when the machine has room in memory for it (see pytest_configure).
MEMORY_DISK = Path("/dev/shm")
MEMORY_DISK_ROOM = 8 * 2**30
# Modules whose every test is end to end (a Prefect server, the main job, a real crawl).
E2E_DIR = Path(__file__).parent / "e2e"


def pytest_configure(config):
    """Set up each test process (the controller and every pytest-xdist worker) before any test
    module or product module is imported."""
    # Cache bytecode (pytest's rewritten test modules, the project's modules) even where the
    # environment sets PYTHONDONTWRITEBYTECODE: compiling them again costs every worker seconds.
    sys.dont_write_bytecode = False
    # Collect garbage less often than CPython's default (every 700 net allocations): pandas, Great
    # Expectations and pydantic allocate so much that the default costs the suite seconds.
    gc.set_threshold(100_000, 50, 100)
    environment = pytest.MonkeyPatch()
    config.add_cleanup(environment.undo)
    # One OpenMP thread a process (scikit-learn's K-means, SciPy): pytest-xdist runs a worker per
    # core, and each worker's own threads on every core made the inner loop half as fast again.
    if "OMP_NUM_THREADS" not in os.environ:
        environment.setenv("OMP_NUM_THREADS", "1")
    # Prefect runs started by tests are recorded in a Prefect home of their own (subprocesses
    # inherit it), never in the user's ~/.prefect, and removed when the process ends.
    # Temporary files (pytest's tmp_path, and every subprocess's) go to a memory file system
    # when there is one with room: DuckDB syncs each commit and checkpoint to disk, which cost
    # the inner loop seconds on this machine's disk. A TMPDIR the user set is kept.
    if "TMPDIR" not in os.environ and has_room(MEMORY_DISK, MEMORY_DISK_ROOM):
        environment.setenv("TMPDIR", str(MEMORY_DISK))
        environment.setattr(tempfile, "tempdir", str(MEMORY_DISK))
    prefect_home = tempfile.mkdtemp(prefix="kic-tests-prefect-")
    config.add_cleanup(lambda: shutil.rmtree(prefect_home, ignore_errors=True))
    environment.setenv("PREFECT_HOME", prefect_home)
    environment.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # In-process tests validate for real but do not render Great Expectations' HTML Data Docs
    # (about half a second a validation, mostly Jinja compiling templates); the tests that look
    # at the Data Docs turn them on, and `kic` in a subprocess runs with the product's default.
    environment.setenv("KIC_DATA_DOCS", "false")


def has_room(folder: Path, room: int) -> bool:
    """Whether `folder` is a directory this process may write, with `room` bytes free."""
    try:
        return os.access(folder, os.W_OK) and shutil.disk_usage(folder).free >= room
    except OSError:
        return False


@pytest.fixture
def study_file():
    from support import study_path

    return study_path


@pytest.fixture
def warehouse_path(tmp_path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture(scope="session")
def new_warehouse(tmp_path_factory) -> Path:
    """A new warehouse, as the first writer creates it (every migration, then the views), made once
    a session: a test's new warehouse is a copy of it (running the migrations again costs 70 ms)."""
    from pipeline.storage import connect

    path = tmp_path_factory.mktemp("new") / "warehouse.duckdb"
    with connect(path):
        pass
    return path


@pytest.fixture
def con(warehouse_path, new_warehouse):
    """A connection to a new warehouse of this test's own, for writing."""
    from pipeline.storage import connect

    shutil.copy(new_warehouse, warehouse_path)
    with connect(warehouse_path) as connection:
        yield connection


@pytest.fixture
def small_grid():
    """The KIC_* settings of support.SMALL_GRID (one K-means candidate, K = 3) for this test."""
    from support import SMALL_GRID, environment

    with environment(SMALL_GRID):
        yield


@pytest.fixture
def small_disk(tmp_path):
    """A real 32 MiB file system (tmpfs), for a disk that fills up; skipped where mounting is not permitted."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every in-process flow run of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def main_job(tmp_path_factory, prefect_harness):
    """The main job (`kic run`) on a 200-influencer sandbox, two weeks apart: two nightly
    refreshes, two snapshots. Tests only read it; tests that write take a copy."""
    from support import MAIN_JOB_DAYS, cli

    warehouse = tmp_path_factory.mktemp("main-job") / "warehouse.duckdb"
    runs = [cli("run", "--influencers", 200, "--date", day, "-w", warehouse) for day in MAIN_JOB_DAYS]
    for result in runs:
        assert result.returncode == 0, result.stderr
    return warehouse, runs


@pytest.fixture
def main_job_copy(main_job, tmp_path):
    """A copy of the main job's warehouse and analysts' copy, to write to."""
    warehouse, _ = main_job
    for name in (warehouse.name, "analytics.duckdb"):
        shutil.copy(warehouse.with_name(name), tmp_path / name)
    return tmp_path / warehouse.name


@pytest.fixture(scope="session")
def pipeline_warehouse(tmp_path_factory) -> Path:
    """A warehouse with an import (one row rejected), two nightly crawls (one profile each
    quarantined by validation), their features, two snapshots, a watchlist and a night's plan
    of it. Built once per worker (its users run on one: pytest_itemcollected); tests copy it,
    never change it."""
    from pipeline import jobs
    from pipeline.settings import Settings
    from pipeline.storage import connect
    from sandbox.synthetic import Population
    from support import FETCHED_AT, PIPELINE_CLUSTERING, PIPELINE_IMPORT, PIPELINE_NIGHTS, import_study, synthetic_crawl
    from warehouse.plans import NightBudget, make_plan, store_plan

    folder = tmp_path_factory.mktemp("pipeline")
    settings = Settings(warehouse=folder / "warehouse.duckdb", clustering=PIPELINE_CLUSTERING, lock_wait_seconds=60)
    csv = folder / "study.csv"
    csv.write_text("\n".join(PIPELINE_IMPORT) + "\n", encoding="utf-8")
    with connect(settings.warehouse) as con:
        import_study(con, csv, date(2026, 5, 25))
    population = Population(80, seed=3)
    for night in PIPELINE_NIGHTS:
        with connect(settings.warehouse) as con:
            crawl_id = synthetic_crawl(con, population, night, validated=False)
            # A negative count for the real validation (run by jobs.features) to quarantine.
            con.execute(
                "UPDATE raw.profiles SET followers = -1 WHERE crawl_id = $id AND username = "
                "(SELECT min(username) FROM raw.profiles WHERE crawl_id = $id)",
                {"id": crawl_id},
            ).fetchall()
        jobs.features(settings, night)
        jobs.recluster(settings)
    jobs.watch(settings, ["alpha_one", "gamma"], "manual")
    with connect(settings.warehouse) as con:
        night = PIPELINE_NIGHTS[-1] + timedelta(days=1)
        budget = NightBudget("web", 1, 75, 660.0, 0.85, 20.0, 1.0)
        plan = make_plan(con, f"web-{night}-plan", ["alpha_one", "gamma"], night, budget, ["shard-001-of-001"], 30)
        store_plan(con, plan, FETCHED_AT)
    return settings.warehouse


def pytest_ignore_collect(collection_path, config):
    """In the inner loop (`-m "not e2e"`), tests/e2e/ is not even imported: importing Prefect's
    client, the flows and Scrapy costs each worker seconds."""
    if config.getoption("markexpr") == INNER_LOOP and collection_path == E2E_DIR:
        return True
    return None


def pytest_itemcollected(item):
    """Whatever needs the session's Prefect server is end to end (e2e: out of the inner loop,
    `-m "not e2e"`), as is all of tests/e2e/ and whatever mounts a file system of its own
    (`small_disk`: the machine's mount table is half of what it tests); what needs the server
    runs on one pytest-xdist worker, so that the server starts once.
    A test that uses a fixture built once per module (a built warehouse, the study's clustering)
    runs on the worker that runs the module's other such tests, so that it is built once, not once
    per worker; every other test goes to whichever worker is free, which keeps both busy to the end."""
    if item.path.is_relative_to(E2E_DIR) or "small_disk" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.e2e)
    if "prefect_harness" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.xdist_group("prefect_harness"))
    elif "pipeline_warehouse" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.xdist_group("pipeline_warehouse"))  # built once
    elif uses_a_module_fixture(item):
        item.add_marker(pytest.mark.xdist_group(item.path.stem))


def uses_a_module_fixture(item) -> bool:
    """Whether `item` resolves a fixture of module (or class or package) scope: pytest's record
    of the fixtures a test uses, the definitions that apply last."""
    fixtures = getattr(item, "_fixtureinfo", None)
    return fixtures is not None and any(
        definitions[-1].scope in ("module", "class", "package") for definitions in fixtures.name2fixturedefs.values()
    )
