"""The scheduler and analysts share one machine: a second process holds a DuckDB file during a run.

Holders keep the file until the test tells them to let go (a line on their stdin): no
sleeps, no races.
"""

import shutil
import subprocess
import sys
import textwrap
import time
from datetime import date

import duckdb
import pytest

from pipeline import jobs, steps
from pipeline.settings import Settings
from pipeline.storage import publish_copy
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from support import PIPELINE_CLUSTERING as CLUSTERING
from support import STUDY_HEADER, subprocess_env
from warehouse.errors import WarehouseBusy
from warehouse.landing import Landing

KIC_ENV = {
    "KIC_CLUSTERING__PUBLISH": "kmeans-k3",
    "KIC_CLUSTERING__MIN_PERSONAS": "3",
    "KIC_CLUSTERING__KMEANS_K": "[3]",
    "KIC_CLUSTERING__KMEDOIDS_K": "[]",
    "KIC_CLUSTERING__ELBOW_K": "[1]",
}


class Holder:
    """Another process (an analyst's session, say) holding `path` open until released."""

    def __init__(self, path, read_only=True):
        script = textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(path)!r}, read_only={read_only})
            print(con.execute("SELECT max(version) FROM clusters.snapshots").fetchall()[0][0], flush=True)
            sys.stdin.readline()  # hold the file until told
            # Still usable after the run: the session was not broken.
            print(con.execute("SELECT max(version) FROM clusters.snapshots").fetchall()[0][0], flush=True)
        """)
        self.process = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.first = self.process.stdout.readline().strip()  # the file is open once this is read

    def release(self) -> str:
        out, _ = self.process.communicate("go\n", timeout=30)
        assert self.process.returncode == 0
        return out.strip()


@pytest.fixture
def settings(pipeline_warehouse, tmp_path):
    """A copy of the session's pipeline warehouse (snapshots 1 and 2), published for analysts."""
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", clustering=CLUSTERING, lock_wait_seconds=60)
    shutil.copy(pipeline_warehouse, settings.warehouse)
    publish_copy(settings.warehouse, settings.analytics_path)
    return settings


def test_an_analyst_session_on_the_copy_neither_blocks_a_run_nor_breaks(settings):
    holder = Holder(settings.analytics_path)
    assert holder.first == "2"
    result = jobs.recluster(settings, force=True)  # writes the warehouse and republishes the copy meanwhile
    assert result.version == 3
    assert holder.release() == "2"  # the open session kept its view, unbroken
    with duckdb.connect(str(settings.analytics_path), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM clusters.snapshots").fetchall() == [(3,)]


def kic_recluster(settings, wait_seconds):
    return subprocess.Popen(
        [sys.executable, "-m", "kic", "recluster", "--force", "-w", str(settings.warehouse)],
        env=subprocess_env({**KIC_ENV, "KIC_LOCK_WAIT_SECONDS": str(wait_seconds)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.e2e
def test_a_run_waits_for_a_process_holding_the_warehouse_then_succeeds(settings):
    holder = Holder(settings.warehouse)
    run = kic_recluster(settings, 120)
    waiting = run.stderr.readline()  # the run says it waits...
    assert "is held by another process" in waiting and "retrying" in waiting
    holder.release()  # ...and goes on once the holder lets go
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "snapshot 3 (kmeans-k3)" in out
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM clusters.snapshots").fetchall() == [(3,)]


@pytest.mark.e2e
def test_a_run_that_cannot_get_the_warehouse_fails_clearly_and_loses_nothing(settings):
    holder = Holder(settings.warehouse)
    try:
        _, err = kic_recluster(settings, 1).communicate(timeout=120)
    finally:
        holder.release()
    error = err.strip().splitlines()[-1]
    assert error.startswith("Error: cannot open warehouse") and "lock" in error.lower() and "PID" in error
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM clusters.snapshots").fetchall() == [(2,)]


def test_an_import_that_cannot_get_the_warehouse_leaves_nothing_for_a_later_load(settings, tmp_path):
    """An import lands, then loads: if the load fails, this command alone answers for the file
    (run again, it imports it then), so nothing of it is left landed for a later load to store."""
    csv = tmp_path / "more.csv"
    csv.write_text(STUDY_HEADER + "\n" + "new.one,10,1000,5,1,0,30,2,0,0,0,0\n", encoding="utf-8")
    runs = "SELECT count(*) FROM raw.crawl_runs"
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        before = con.execute(runs).fetchall()
    holder = Holder(settings.warehouse)
    try:
        with pytest.raises(WarehouseBusy, match="cannot open warehouse"):
            jobs.import_csv(settings.model_copy(update={"lock_wait_seconds": 0.5}), csv, date(2026, 11, 3))
    finally:
        holder.release()
    assert Landing(settings.landing_root).crawl_keys() == []
    assert steps.find_unloaded_crawls(settings) == []
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute(runs).fetchall() == before


@pytest.mark.e2e
def test_a_slow_crawl_holds_no_lock_while_accounts_are_added_and_a_recluster_runs(settings, tmp_path):
    """The crawl lands files and never opens the warehouse: the others need not wait for it."""
    box = SandboxSettings(influencers=32, seed=11, date=date(2026, 6, 2), faults={"slow_rate": 1.0, "slow_seconds": 25})
    with Sandbox(box) as sandbox:
        names = ",".join(a.username for a in sandbox.population.accounts)
        env = subprocess_env({**KIC_ENV, "KIC_WEB_BASE_URL": sandbox.url})
        crawl = subprocess.Popen(
            [sys.executable, "-m", "kic", "crawl", "-w", str(settings.warehouse), "--accounts", names],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        landing = settings.warehouse.parent / "landing"
        while not list(landing.glob("*/request.json")):  # the crawl is recorded, its crawler starting
            assert crawl.poll() is None, crawl.communicate()
            time.sleep(0.2)
        # Both must get the warehouse at once: they may wait 5 s, every answer takes 25 s (under Scrapy's 30 s timeout).
        others = {**env, "KIC_LOCK_WAIT_SECONDS": "5"}
        added = subprocess.run(
            [sys.executable, "-m", "kic", "accounts", "add", "newcomer", "-w", str(settings.warehouse)],
            env=others,
            capture_output=True,
            text=True,
            timeout=120,
        )
        reclustered = subprocess.run(
            [sys.executable, "-m", "kic", "recluster", "--force", "-w", str(settings.warehouse)],
            env=others,
            capture_output=True,
            text=True,
            timeout=120,
        )
        # The crawler was still crawling all along (its shard not closed): the test shows something.
        assert not list(landing.glob("*/shard-*/closed.json")), "the crawl ended before the others ran"
        out, err = crawl.communicate(timeout=300)
    assert added.returncode == 0, added.stderr
    assert reclustered.returncode == 0 and "snapshot 3" in reclustered.stdout, reclustered.stderr
    assert crawl.returncode == 0, err
    assert "(web, succeeded): 32 account(s)" in out
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM watchlist.accounts WHERE username = 'newcomer'").fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM clusters.snapshots").fetchall() == [(3,)]
        assert con.execute("SELECT count(DISTINCT username) FROM raw.account_outcomes").fetchall()[0][0] >= 32
