"""Flows retry an I/O step only on errors a retry can fix (Prefect's retry_condition_fn): the
warehouse held by another process, a crawler that died, the network, a 5xx. A bad input, a
full disk, a damaged file or a bug fails at once."""

import errno

import httpx
import pytest

from flows.tasks import IO_TASK, as_task, is_transient
from pipeline.crawl import CrawlerDied
from pipeline.steps import io_step
from warehouse.db import Damaged
from warehouse.errors import KicError, NoSpace, WarehouseBusy
from warehouse.publish import PublishFailed


def http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1/api")
    return httpx.HTTPStatusError("status", request=request, response=httpx.Response(status, request=request))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (WarehouseBusy("cannot open warehouse w.duckdb: held"), True),
        (CrawlerDied("the crawler exited before closing"), True),
        (PublishFailed("publishing failed (held)", transient=True), True),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
        (TimeoutError("timed out"), True),
        (httpx.ConnectError("refused"), True),
        (http_error(503), True),
        (http_error(404), False),
        (KicError("features are stale: run the nightly refresh"), False),
        (NoSpace("no space left on the disk of w.duckdb"), False),
        (OSError(errno.ENOSPC, "No space left on device", "w.duckdb"), False),
        (OSError(errno.EROFS, "Read-only file system", "w.duckdb"), False),
        (Damaged("w.duckdb", "Corrupt database file"), False),
        (PublishFailed("publishing failed (no space left)"), False),
        (ValueError("a bug"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_only_what_a_retry_can_fix_is_transient(error, transient):
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (WarehouseBusy("cannot open warehouse w.duckdb: held by PID 42"), 1 + IO_TASK["retries"]),
        (NoSpace("no space left on the disk of w.duckdb"), 1),
        (KicError("features are stale (...): run the nightly-refresh deployment"), 1),
        (OSError(errno.ENOSPC, "No space left on device", "gx_validations"), 1),
    ],
    ids=["busy", "no-space", "stale", "ENOSPC"],
)
def test_an_io_task_is_retried_on_transient_errors_only(prefect_harness, error, attempts):
    from prefect import flow

    calls = []

    @io_step
    def failing_step() -> None:
        """Fail as the warehouse or a disk would."""
        calls.append(1)
        raise error

    @flow(name="retry-check")
    def retry_check():
        as_task(failing_step).with_options(retry_delay_seconds=0)()

    state = retry_check(return_state=True)
    assert state.is_failed()
    assert len(calls) == attempts


def test_runs_whose_process_died_are_marked_crashed_and_live_ones_are_left(prefect_harness, tmp_path):
    """kill -9 of the process running a flow (kic run's, a worker's child): the run stays Running
    on the server until the next kic serve / kic run start marks it Crashed, saying why."""
    import os
    import signal
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL

    from flows.runs import crash_abandoned_runs
    from support import REPO, SLEEPER, subprocess_env

    env = subprocess_env({"PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": str(REPO)})
    sleepers = [
        subprocess.Popen([sys.executable, "-c", SLEEPER], env=env, stdout=subprocess.PIPE, text=True, cwd=tmp_path)
        for _ in range(2)
    ]
    try:
        for sleeper in sleepers:
            assert sleeper.stdout.readline().strip() == "running"
        killed, alive = sleepers
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        with get_client(sync_client=True) as client:
            crashed = crash_abandoned_runs(client)
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["kic-sleeper"])))
        by_pid = {run.infrastructure_pid.rpartition(":")[2]: run for run in runs}
        assert [run.id for run in crashed] == [by_pid[str(killed.pid)].id]
        assert by_pid[str(killed.pid)].state.type.value == "CRASHED"
        assert "ended without reporting an end" in by_pid[str(killed.pid)].state.message
        assert by_pid[str(alive.pid)].state.type.value == "RUNNING"
    finally:
        for sleeper in sleepers:
            if sleeper.poll() is None:
                sleeper.kill()
                sleeper.wait()
