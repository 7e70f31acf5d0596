"""The whole schedule on a real Prefect server: `kic serve` deploys prefect.yaml, both deployments
are triggered and run by its worker against the sandbox, checked through the API, the UI and
the warehouse; and `kic serve` stops on SIGTERM and SIGINT, in the background too."""

import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowFilter, FlowFilterName
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipeline.settings import Settings
from support import REPO, SLEEPER, headless_chromium, kic, subprocess_env

MAIN_JOB_DAY = date(2026, 6, 1)
README = (REPO / "README.md").read_text(encoding="utf-8")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,900",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=30000",
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
    return headless_chromium(CHROMIUM_FLAGS, *args)


def descendants_of(pid: int) -> list[int]:
    children = children_of(pid)
    return children + [d for child in children for d in descendants_of(child)]


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


class Serve:
    """`kic serve` as `kic serve > log 2>&1 &` starts it: a shell leaves SIGINT ignored in a background job."""

    def __init__(self, port, home, env=None):
        self.port = port
        env = subprocess_env(
            {
                "PREFECT_HOME": str(home / "prefect-home"),
                "KIC_WAREHOUSE": str(home / "warehouse.duckdb"),
                "KIC_SANDBOX__INFLUENCERS": "60",
                "PYTHONUNBUFFERED": "1",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                **(env or {}),
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kic", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        if not self.ready.wait(timeout=240):
            self.process.kill()
            raise AssertionError("kic serve did not come up: " + "".join(self.lines))

    def read(self):
        for line in self.process.stdout:
            self.lines.append(line)
            if "stops the worker" in line:
                self.ready.set()
        self.ready.set()  # it ended: stop waiting

    @property
    def said(self) -> str:
        return "".join(self.lines)

    def stop_and_check(self, signum):
        """Send `signum`: kic serve stops, every process it started goes with it, the port is free."""
        started = descendants_of(self.process.pid)
        assert len(started) >= 2  # the Prefect server and the worker, and whatever they started
        self.process.send_signal(signum)
        assert self.process.wait(timeout=90) == 0
        self.reader.join(timeout=30)
        assert "stopping" in self.said
        deadline = time.monotonic() + 30
        while [pid for pid in started if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in started if Path(f"/proc/{pid}").exists()]
        assert not left, f"processes {left} outlived kic serve"
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind (TIME_WAIT is no holder)
            s.bind(("127.0.0.1", self.port))  # the port is free again


def test_the_schedule_runs_on_kic_serve_and_shows_in_its_ui_and_sigterm_stops_it(tmp_path):
    """The README's main job, then `kic serve` in the background: deployments, a run triggered
    as the README says, artifacts and history through the API and the UI, a second
    `kic serve` refused, then SIGTERM stops it all."""
    warehouse = tmp_path / "warehouse.duckdb"
    env = {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "KIC_WAREHOUSE": str(warehouse),
        "KIC_SANDBOX__INFLUENCERS": "60",
        "KIC_CLUSTERING__KMEDOIDS_K": "[3]",
    }
    # The main job first, on a temporary server: its runs must be in the history `kic serve` shows.
    main_job = kic("run", "--date", MAIN_JOB_DAY.isoformat(), env=env)
    assert main_job.returncode == 0, main_job.stderr
    today = Settings().today()

    port = free_port()
    serve = Serve(port, tmp_path, env)
    try:
        api = f"http://127.0.0.1:{port}/api"
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            deployments = {d.name: d for d in client.read_deployments()}
            assert set(deployments) == {"nightly-refresh", "weekly-recluster", "crawl-shard"}
            schedules = {
                name: [(s.schedule.cron, s.schedule.timezone) for s in d.schedules] for name, d in deployments.items()
            }
            assert schedules == {
                "nightly-refresh": [("0 3 * * *", "Asia/Seoul")],
                "weekly-recluster": [("0 9 * * 1", "Asia/Seoul")],
                "crawl-shard": [],  # started by nightly-refresh, one run per shard
            }
            assert [p.name for p in client.read_work_pools()] == ["kic-process"]
            # Each description opens with its schedule in words, its zone, and the same in UTC.
            assert deployments["nightly-refresh"].description.startswith(
                "Every day 03:00 Asia/Seoul (18:00 UTC the day before): "
            )
            assert deployments["weekly-recluster"].description.startswith(
                "Every Monday 09:00 Asia/Seoul (Monday 00:00 UTC): "
            )

            # The README's command, as written (but for the port), starts a run of the deployment.
            (trigger,) = [line for line in README.splitlines() if "prefect deployment run nightly-refresh" in line]
            command = trigger.replace(":4200", f":{port}").replace(
                "uv run prefect", str(Path(sys.executable).parent / "prefect")
            )
            ran = subprocess.run(
                command,
                shell=True,
                capture_output=True,
                text=True,
                timeout=120,
                env=subprocess_env({"PREFECT_API_URL": ""}),
                cwd=REPO,
            )
            assert ran.returncode == 0, ran.stdout + ran.stderr
            (started,) = set(re.findall(r"UUID: ([0-9a-f-]{36})", ran.stdout))  # the run it created
            nightly = wait_final(client, started)
            assert nightly.deployment_id == deployments["nightly-refresh"].id
            assert nightly.state.is_completed(), (nightly.state.message, (tmp_path / "logs" / "worker.log"))
            weekly = wait_final(client, run_deployment("weekly-recluster/weekly-recluster", timeout=0).id)
            assert weekly.state.is_completed(), weekly.state.message
            # The day crawled, the start (HHMMSS in Seoul), the crawl loaded; the feature date and snapshot made.
            assert re.fullmatch(rf"nightly-refresh-{today}-web-\d{{6}}-KST-crawl-2", nightly.name), nightly.name
            assert re.fullmatch(rf"weekly-recluster-{today}-v2-\d{{6}}-KST", weekly.name), weekly.name

            made = {
                run.name: {
                    a.key: a
                    for a in client.read_artifacts(
                        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
                    )
                }
                for run in (nightly, weekly)
            }
            keys = {name: set(found) for name, found in made.items()}
            assert keys[nightly.name] == {"nightly-plan", "nightly-crawl-outcomes", "nightly-validation"}
            assert keys[weekly.name] == {
                "weekly-clusters",
                "weekly-candidates",
                "weekly-persona-changes",
                "weekly-report",
                "weekly-scatter",
                "weekly-dendrogram",
                "weekly-moves",
                "weekly-observation-ages",
            }
            history = {run.name for run in client.read_flow_runs()}
            (main_night,) = [name for name in history if name.startswith(f"nightly-refresh-{MAIN_JOB_DAY}-web-")]
            assert {nightly.name, weekly.name} <= history

        second = kic("serve", "--port", str(port), env={"KIC_WAREHOUSE": str(tmp_path / "other.duckdb")})
        assert second.returncode == 1
        assert f"port {port} on 127.0.0.1 is taken (by PID " in second.stderr and "--port" in second.stderr

        if shutil.which("chromium") is not None:
            url = f"http://127.0.0.1:{port}"
            dom = chromium("--dump-dom", f"{url}/runs").stdout
            for name in (main_night, nightly.name, weekly.name):
                assert name in dom, f"{name} not in the UI's run history"
            screenshot = tmp_path / "prefect-ui-runs.png"
            chromium(f"--screenshot={screenshot}", f"{url}/runs")
            assert screenshot.stat().st_size > 10_000
            # The weekly run's report artifact, as the UI renders it: its key charts inline.
            page = f"{url}/artifacts/artifact/{made[weekly.name]['weekly-report'].id}"
            dom = chromium("--dump-dom", page).stdout
            assert "Snapshot 2: report" in dom and "Who to pick" in dom
            assert re.search(r'<a href="https://www\.instagram\.com/[^"/]+/"', dom)  # best fits, linked
            assert len(re.findall(r'<img src="data:image/png;base64,', dom)) == 3  # scatter, tree, moves
            shown = tmp_path / "prefect-ui-weekly-report.png"
            chromium("--window-size=1400,3000", f"--screenshot={shown}", page)
            assert shown.stat().st_size > 10_000
            # The weekly run's page (its timeline shows the artifacts each task made), and its
            # persona-changes artifact: the largest moves with why, and where the full list is.
            run_page = f"{url}/runs/flow-run/{weekly.id}"
            chromium("--window-size=1400,1000", f"--screenshot={tmp_path / 'prefect-ui-weekly-run.png'}", run_page)
            page = f"{url}/artifacts/artifact/{made[weekly.name]['weekly-persona-changes'].id}"
            dom = chromium("--dump-dom", page).stdout
            assert "kic changes 1 2" in dom or "no influencer changed persona" in dom
            chromium("--window-size=1400,1400", f"--screenshot={tmp_path / 'prefect-ui-persona-changes.png'}", page)
    finally:
        serve.stop_and_check(signal.SIGTERM)

    with duckdb.connect(str(warehouse.with_name("analytics.duckdb")), read_only=True) as con:
        snapshots = con.execute("SELECT version, feature_date FROM clusters.snapshots ORDER BY 1").fetchall()
        nightly_rows = con.execute(
            "SELECT count(*) FROM features.influencer_features WHERE feature_date = ?", [today]
        ).fetchall()
    assert snapshots == [(1, MAIN_JOB_DAY), (2, today)]
    assert nightly_rows == [(60,)]
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): UI not checked")


def test_kic_serve_marks_a_run_whose_process_died_crashed_and_stops_everything_on_sigint(tmp_path):
    """Prefect's own zombie detection, set up by kic serve: a flow run whose process is killed
    (-9: no end reported) stops sending heartbeats, and the server marks it Crashed."""
    port = free_port()
    heartbeat = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}  # Prefect's minimum: three missed in 90 s
    serve = Serve(port, tmp_path, heartbeat)
    assert "watchlist was empty: added the sandbox's 60 accounts" in serve.said
    try:
        api = f"http://127.0.0.1:{port}/api"
        env = subprocess_env({"PREFECT_API_URL": api, "PYTHONPATH": str(REPO), **heartbeat})
        sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER], env=env, stdout=subprocess.PIPE, text=True)
        assert sleeper.stdout.readline().strip() == "running"
        time.sleep(2)  # its first heartbeat is sent as it starts
        sleeper.kill()
        sleeper.wait()
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            (run,) = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["kic-sleeper"])))
            assert run.state.is_running()
            deadline = time.monotonic() + 240
            while not run.state.is_final() and time.monotonic() < deadline:
                time.sleep(5)
                run = client.read_flow_run(run.id)
        assert run.state.type.value == "CRASHED", run.state
        assert "sent no heartbeat for 90 s" in run.state.message
    finally:
        serve.stop_and_check(signal.SIGINT)
