"""Bringing the scheduled workflow up on one machine: Prefect server, work pool, deployments, worker.

`kic serve` stops everything it started on Ctrl-C and on SIGTERM alike, in the foreground
or in the background, and its children die with it even if it is killed outright.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from pipeline.processes import die_with_parent
from pipeline.settings import Settings
from warehouse.errors import KicError

PROJECT_DIR = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_DIR / "prefect.yaml"
HOST = "127.0.0.1"


def work_pool_name() -> str:
    """The process work pool that prefect.yaml's deployments use."""
    return deployments()[0]["work_pool"]["name"]


def deployments() -> list[dict]:
    return yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


# cron's days of the week, 0 (and 7) = Sunday
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def schedule_in_words(cron: str, timezone: str) -> str:
    """A daily or weekly cron in words, with its zone and the same moment in UTC (what the Prefect
    UI shows): "every Monday 09:00 Asia/Seoul (Monday 00:00 UTC)". Other crons are given as they are."""
    minute, hour, day_of_month, month, weekday = cron.split()
    one_weekday = weekday.isdigit() and int(weekday) <= 7
    if not (minute.isdigit() and hour.isdigit() and day_of_month == month == "*" and (weekday == "*" or one_weekday)):
        return f"cron {cron!r} in {timezone}"
    # A day of January 2026 (winter time, where a zone has summer time) of the right weekday: 2026-01-04 is a Sunday.
    on = dt.date(2026, 1, 4 + (int(weekday) % 7 if weekday != "*" else 1))
    local = dt.datetime.combine(on, dt.time(int(hour), int(minute)), ZoneInfo(timezone))
    utc = local.astimezone(dt.UTC)
    if utc.utcoffset() == local.utcoffset():
        return f"every {'day' if weekday == '*' else WEEKDAYS[int(weekday) % 7]} {local:%H:%M} {timezone}"
    if weekday == "*":
        shift = {-1: " the day before", 0: "", 1: " the day after"}[(utc.date() - local.date()).days]
        return f"every day {local:%H:%M} {timezone} ({utc:%H:%M} UTC{shift})"
    return f"every {WEEKDAYS[int(weekday) % 7]} {local:%H:%M} {timezone} ({utc:%A} {utc:%H:%M} UTC)"


def schedules_in_words() -> dict[str, str]:
    """Each deployment's schedules in words (none: started by another run)."""
    return {
        d["name"]: "; ".join(schedule_in_words(s["cron"], s["timezone"]) for s in d.get("schedules") or [])
        for d in deployments()
    }


def port_holder(port: int) -> str | None:
    """Who listens on 127.0.0.1:`port` ("PID 42: python -m prefect server start"), if Linux's /proc tells."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                    pid = fd_dir.parent.name
                    command = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                    return f"PID {pid}: {command[:120]}"
        except OSError:
            continue
    return None


def free_port() -> int:
    """A port on 127.0.0.1 no one listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def require_free_port(port: int) -> None:
    """Refuse to start on a taken port (a leftover server would otherwise be taken for ours)."""
    with socket.socket() as probe:
        # As servers bind: connections of a server just stopped (TIME_WAIT) do not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            holder = port_holder(port)
            raise KicError(
                f"port {port} on {HOST} is taken"
                + (f" (by {holder})" if holder else "")
                + ": stop that process, or choose another with --port"
            ) from None


@dataclass
class PrefectStack:
    """A Prefect server on 127.0.0.1, the work pool, prefect.yaml deployed, and a worker."""

    port: int = 4200
    env: dict[str, str] = field(default_factory=dict)  # extra environment for server, CLI and worker
    log_dir: Path | None = None
    worker_poll_seconds: float | None = None
    workers: int = 1  # worker processes polling the pool (each crawl shard runs on whichever is free)
    worker_limit: int | None = None  # flow runs each worker runs at once (None: no limit)
    deploy: bool = True  # create the work pool, deploy prefect.yaml, start the workers; False: the server only
    # In a session of its own, a child does not get the terminal's Ctrl-C: the parent handles
    # it and stops the child after (a `kic run` reports its crashed flow run to the server first).
    own_session: bool = False
    say: Callable[[str], None] = field(default=lambda doing: None, repr=False)  # told what starts (kic.progress)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "PREFECT_API_URL": self.api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        if self.worker_poll_seconds is not None:
            env["PREFECT_WORKER_QUERY_SECONDS"] = str(self.worker_poll_seconds)
        return env

    def prefect(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "prefect", *args]

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        out = subprocess.DEVNULL
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            self.prefect(*args),
            env=self.environment(),
            cwd=PROJECT_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            start_new_session=self.own_session,
        )
        self.processes.append(process)
        return process

    def run(self, *args: str) -> str:
        result = subprocess.run(
            self.prefect(*args),
            env=self.environment(),
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()
            raise KicError(f"`prefect {' '.join(args)}` failed: {said[-1] if said else result.returncode}")
        return result.stdout

    def start(self, timeout: float = 120) -> PrefectStack:
        require_free_port(self.port)
        self.say(f"starting the Prefect server on {self.url}")
        server = self.spawn("server", "server", "start", "--host", HOST, "--port", str(self.port))
        self.wait_healthy(server, timeout)
        if not self.deploy:
            return self
        self.say(f"creating the work pool {work_pool_name()}")
        self.run("work-pool", "create", work_pool_name(), "--type", "process", "--overwrite")
        self.say("deploying prefect.yaml")
        self.run("--no-prompt", "deploy", "--all")
        self.say(f"starting {self.workers} worker(s)")
        for n in range(1, self.workers + 1):
            name = "kic-worker" if self.workers == 1 else f"kic-worker-{n}"
            limit = ["--limit", str(self.worker_limit)] if self.worker_limit else []
            self.spawn(name, "worker", "start", "--pool", work_pool_name(), "--name", name, *limit)
        return self

    def wait_healthy(self, server: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise KicError(f"the Prefect server exited (status {server.returncode}); see its log")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise KicError(f"the Prefect server did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Worker first, then server; each gets a graceful SIGTERM, then is killed. Before that,
        what flows run in this process still hold for the server (logs, events) is sent to it."""
        if self.processes:
            drain_to_server()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()

    def __enter__(self) -> PrefectStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def drain_to_server(timeout: float = 10) -> None:
    """Send the logs and events Prefect still holds in this process (sent in the background, in
    batches) to their server, if Prefect was used here at all."""
    if "prefect.logging.handlers" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout)
    EventsWorker.drain_all(timeout=timeout)


class Stop(Exception):
    """SIGINT or SIGTERM arrived: stop everything."""


def raise_stop(signum, frame):
    raise Stop(signal.Signals(signum).name)


def serve_until_stopped(settings: Settings, port: int, echo: Callable[[str], None] = print, workers: int = 1) -> None:
    """Sandbox (unless a real source is configured), Prefect stack, then wait for SIGINT or SIGTERM.

    Both signals are handled the same way, even when started in the background (where a
    shell leaves SIGINT ignored): every child is stopped before returning.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.runs import crash_abandoned_runs, ensure_crash_automation
    from kic.progress import showing
    from pipeline import jobs
    from pipeline.storage import open_warehouse
    from sandbox.server import Sandbox
    from warehouse import watchlist

    require_free_port(port)
    previous = {sig: signal.signal(sig, raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    env = {"KIC_WAREHOUSE": str(settings.warehouse.resolve()), "PREFECT_LOGGING_EXTRA_LOGGERS": "kic"}
    try:
        with ExitStack() as running:
            if not {"web_base_url", "graph_base_url"} & settings.model_fields_set:
                sandbox = running.enter_context(Sandbox())
                env["KIC_WEB_BASE_URL"] = env["KIC_GRAPH_BASE_URL"] = sandbox.url
                # Paced by the sandbox's own quotas, as a real source by its published limits.
                env |= {f"KIC_QUOTAS__{name.upper()}": str(value) for name, value in sandbox.client_quotas().items()}
                with open_warehouse(settings) as con:
                    empty = not watchlist.active_count(con)
                if empty:
                    added = jobs.watch(settings, [a.username for a in sandbox.population.accounts], "sandbox")
                    echo(f"watchlist was empty: added the sandbox's {added} accounts")
                echo(f"crawl target: the local sandbox at {sandbox.url} (set KIC_WEB_BASE_URL for a real source)")
            with showing("kic serve") as shown:
                stack = PrefectStack(port=port, env=env, log_dir=settings.logs_path, workers=workers, say=shown.say)
                running.enter_context(stack)
                shown.say("marking runs whose process died as crashed")
                with temporary_settings({PREFECT_API_URL: stack.api_url}):
                    ensure_crash_automation()
                    crashed = [run.name for run in crash_abandoned_runs()]
            if crashed:
                echo(f"marked crashed: {len(crashed)} run(s) whose process had died ({', '.join(crashed)})")
            echo(f"Prefect UI: {stack.url}  (runs: {stack.url}/runs, deployments: {stack.url}/deployments)")
            listed = ", ".join(
                f"{name} ({when or 'started by nightly-refresh'})" for name, when in schedules_in_words().items()
            )
            echo(f"deployments: {listed}; {workers} worker(s) on pool {work_pool_name()}")
            echo(
                f"run one now: PREFECT_API_URL={stack.api_url} "
                "uv run prefect deployment run nightly-refresh/nightly-refresh"
            )
            echo(f"analysts open: {settings.analytics_path}; logs in {settings.logs_path}")
            echo("Ctrl-C (or SIGTERM) stops the worker, the server and the sandbox")
            while True:
                time.sleep(3600)
    except Stop as stop:
        echo(f"stopping ({stop})")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
