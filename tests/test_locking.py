"""The scheduler and analysts share one machine: a second process holds a DuckDB file during a run."""

import subprocess
import sys
import textwrap
from datetime import date

import duckdb
from conftest import kic, synthetic_crawl

from kic import jobs
from kic.settings import Settings
from kic.synthetic import Population
from warehouse.db import connect

CLUSTERING = {"kmeans_k": [3], "kmedoids_k": [], "elbow_k": [1], "publish": "kmeans-k3"}


def hold(path, seconds, read_only=True):
    """Another process (an analyst's session, say) holding `path` open."""
    script = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r}, read_only={read_only})
        print(con.execute("SELECT max(version) FROM clusters.snapshots").fetchall()[0][0], flush=True)
        time.sleep({seconds})
        # Still usable after the run: the session was not broken.
        print(con.execute("SELECT max(version) FROM clusters.snapshots").fetchall()[0][0], flush=True)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    first = holder.stdout.readline().strip()  # the file is open once this is read
    return holder, first


def populated(tmp_path):
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb", clustering=CLUSTERING)
    with connect(settings.warehouse) as con:
        synthetic_crawl(con, Population(80, seed=3), date(2026, 6, 1))
    jobs.recluster_latest(settings)
    return settings


def test_an_analyst_session_on_the_copy_neither_blocks_a_run_nor_breaks(tmp_path):
    settings = populated(tmp_path)
    holder, seen = hold(settings.analytics_path, 4)
    assert seen == "1"
    result = jobs.recluster_latest(settings)  # writes the warehouse and republishes the copy meanwhile
    assert result.version == 2
    out, _ = holder.communicate(timeout=30)
    assert holder.returncode == 0 and out.strip() == "1"  # the open session kept its view, unbroken
    with duckdb.connect(str(settings.analytics_path), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM clusters.snapshots").fetchall() == [(2,)]


def test_a_run_waits_for_a_process_holding_the_warehouse_then_succeeds(tmp_path):
    settings = populated(tmp_path)
    holder, _ = hold(settings.warehouse, 3)
    result = kic("recluster", "-w", str(settings.warehouse), env={
        "KIC_LOCK_WAIT_SECONDS": "60", "KIC_CLUSTERING__PUBLISH": "kmeans-k3", "KIC_CLUSTERING__KMEANS_K": "[3]"})
    holder.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "is held by another process" in result.stderr and "retrying" in result.stderr
    assert "snapshot 2 (kmeans-k3)" in result.stdout
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM clusters.snapshots").fetchall() == [(2,)]


def test_a_run_that_cannot_get_the_warehouse_fails_clearly_and_loses_nothing(tmp_path):
    settings = populated(tmp_path)
    holder, _ = hold(settings.warehouse, 15)
    try:
        result = kic("recluster", "-w", str(settings.warehouse), env={"KIC_LOCK_WAIT_SECONDS": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: cannot open warehouse") and "lock" in error.lower() and "PID" in error
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM clusters.snapshots").fetchall() == [(1,)]
