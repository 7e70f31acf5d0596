"""Bringing the scheduled workflow up on one machine: Prefect server, work pool, deployments, worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kic.errors import KicError

PROJECT_DIR = Path(__file__).resolve().parents[1]
PREFECT_YAML = PROJECT_DIR / "prefect.yaml"


def work_pool_name() -> str:
    """The process work pool that prefect.yaml's deployments use."""
    deployments = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    return deployments[0]["work_pool"]["name"]


def default_sigint():
    # A child started from a non-interactive shell inherits SIGINT as ignored, and
    # Prefect's server and worker stop gracefully by way of SIGINT: restore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class PrefectStack:
    """A Prefect server on 127.0.0.1, the work pool, prefect.yaml deployed, and a worker."""

    port: int = 4200
    env: dict[str, str] = field(default_factory=dict)  # extra environment for server, CLI and worker
    log_dir: Path | None = None
    worker_poll_seconds: float | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def environment(self) -> dict[str, str]:
        env = {**os.environ, **self.env, "PREFECT_API_URL": self.api_url,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
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
            self.prefect(*args), env=self.environment(), cwd=PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=default_sigint,
        )
        self.processes.append(process)
        return process

    def run(self, *args: str) -> str:
        result = subprocess.run(
            self.prefect(*args), env=self.environment(), cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().splitlines()
            raise KicError(f"`prefect {' '.join(args)}` failed: {said[-1] if said else result.returncode}")
        return result.stdout

    def start(self, timeout: float = 120) -> PrefectStack:
        server = self.spawn("server", "server", "start", "--host", "127.0.0.1", "--port", str(self.port))
        self.wait_healthy(server, timeout)
        self.run("work-pool", "create", work_pool_name(), "--type", "process", "--overwrite")
        self.run("--no-prompt", "deploy", "--all")
        self.spawn("worker", "worker", "start", "--pool", work_pool_name(), "--name", "kic-worker")
        return self

    def wait_healthy(self, server: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise KicError(f"the Prefect server exited (status {server.returncode}); is port {self.port} free?")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise KicError(f"the Prefect server did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Worker first, then server; each gets a graceful SIGTERM, then is killed."""
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
