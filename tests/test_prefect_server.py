"""The whole schedule on a real Prefect server: deploy prefect.yaml, trigger both deployments,
let a worker run them against the sandbox, check through the API, the UI and the warehouse."""

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, kic, subprocess_env
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from kic.sandbox import Sandbox
from kic.serve import PrefectStack
from kic.settings import Settings
from warehouse import watchlist
from warehouse.db import connect

MAIN_JOB_DAY, NIGHT = date(2026, 6, 1), date(2026, 6, 2)
SCREENSHOT = REPO / "artifacts" / "prefect-ui-runs.png"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900",
    "--run-all-compositor-stages-before-draw", "--virtual-time-budget=30000",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_final(client, flow_run_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} not finished after {timeout} s")


def chromium(*args):
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [shutil.which("chromium"), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120,
        )


def test_deployments_run_on_a_real_server_and_show_in_its_ui(tmp_path):
    prefect_home = tmp_path / "prefect-home"
    warehouse = tmp_path / "warehouse.duckdb"
    env = subprocess_env({
        "PREFECT_HOME": str(prefect_home),
        "KIC_WAREHOUSE": str(warehouse),
        "KIC_SYNTHETIC__INFLUENCERS": "60",
        "KIC_CLUSTERING__KMEDOIDS_K": "[3]",
    })
    # The README's main job first: its flow runs must be in the history the UI shows later.
    main_job = kic("run", "--date", MAIN_JOB_DAY.isoformat(), env=env)
    assert main_job.returncode == 0, main_job.stderr

    settings = Settings(warehouse=warehouse, synthetic={"influencers": 60}, sandbox={"date": NIGHT})
    with Sandbox(settings) as sandbox:
        with connect(warehouse) as con:
            watchlist.add(con, [a.username for a in sandbox.population.accounts], "sandbox")
        stack = PrefectStack(port=free_port(), env={**env, "KIC_WEB_BASE_URL": sandbox.url},
                             log_dir=tmp_path / "logs", worker_poll_seconds=2)
        with stack, temporary_settings({PREFECT_API_URL: stack.api_url}), get_client(sync_client=True) as client:
            deployments = {d.name: d for d in client.read_deployments()}
            assert set(deployments) == {"nightly-refresh", "weekly-recluster"}
            schedules = {name: [(s.schedule.cron, s.schedule.timezone) for s in d.schedules]
                         for name, d in deployments.items()}
            assert schedules == {"nightly-refresh": [("0 3 * * *", "Asia/Seoul")],
                                 "weekly-recluster": [("0 5 * * 1", "Asia/Seoul")]}

            nightly = run_deployment("nightly-refresh/nightly-refresh", parameters={"date": NIGHT.isoformat()}, timeout=0)
            nightly = wait_final(client, nightly.id)
            assert nightly.state.is_completed(), (nightly.state.message, (tmp_path / "logs" / "worker.log").read_text()[-3000:])
            weekly = wait_final(client, run_deployment("weekly-recluster/weekly-recluster", timeout=0).id)
            assert weekly.state.is_completed(), weekly.state.message

            keys = {run.name: {a.key for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))}
                for run in (nightly, weekly)}
            assert keys[nightly.name] == {"nightly-crawl-outcomes", "nightly-validation"}
            assert keys[weekly.name] == {"weekly-clusters", "weekly-candidates", "weekly-persona-changes"}
            history = {run.name for run in client.read_flow_runs()}
            assert {f"nightly-refresh-{MAIN_JOB_DAY}-web", f"nightly-refresh-{NIGHT}-web", weekly.name} <= history

            if shutil.which("chromium") is None:
                pytest.skip("Debian's chromium is not installed (apt-get install chromium): UI not checked")
            dom = chromium("--dump-dom", f"{stack.url}/runs").stdout
            for name in (f"nightly-refresh-{MAIN_JOB_DAY}-web", nightly.name, weekly.name):
                assert name in dom, f"{name} not in the UI's run history"
            SCREENSHOT.parent.mkdir(exist_ok=True)
            chromium(f"--screenshot={SCREENSHOT}", f"{stack.url}/runs")
            assert SCREENSHOT.stat().st_size > 10_000

    with duckdb.connect(str(settings.analytics_path), read_only=True) as con:
        snapshots = con.execute("SELECT version, feature_date FROM clusters.snapshots ORDER BY 1").fetchall()
        nightly_rows = con.execute("SELECT count(*) FROM features.influencer_features WHERE feature_date = ?", [NIGHT]).fetchall()
    assert snapshots == [(1, MAIN_JOB_DAY), (2, NIGHT)]
    assert nightly_rows == [(60,)]


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_kic_serve_brings_it_all_up_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = subprocess_env({"PREFECT_HOME": str(tmp_path / "prefect-home"), "KIC_WAREHOUSE": str(tmp_path / "w.duckdb"),
                          "KIC_SYNTHETIC__INFLUENCERS": "20", "PYTHONUNBUFFERED": "1"})
    serve = subprocess.Popen([sys.executable, "-m", "kic", "serve", "--port", str(port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said, deadline = [], time.monotonic() + 240
    reader = threading.Thread(target=lambda: said.extend(serve.stdout), daemon=True)
    reader.start()
    try:
        while not any("Ctrl-C stops" in line for line in said):
            assert time.monotonic() < deadline and serve.poll() is None, "".join(said)
            time.sleep(0.5)
        text = "".join(said)
        assert f"Prefect UI: http://127.0.0.1:{port}" in text
        assert "watchlist was empty: added the sandbox's 20 accounts" in text
        started = children_of(serve.pid)
        assert len(started) >= 2  # the Prefect server and the worker
        with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}), get_client(sync_client=True) as client:
            assert {d.name for d in client.read_deployments()} == {"nightly-refresh", "weekly-recluster"}
            assert [p.name for p in client.read_work_pools()] == ["kic-process"]
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl-C
        serve.wait(timeout=90)
        reader.join(timeout=10)
    assert "stopping" in "".join(said)
    for pid in started:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived kic serve"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port is free again
