"""Flow runs whose process died (kill -9, a machine restarted) are marked Crashed, not left Running.

Two ways, for the two situations:

- While a server runs (`kic serve`): Prefect's own zombie detection. Every flow run sends a
  heartbeat event (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, 180 s by default); an automation on
  the server marks a run Crashed when three heartbeats in a row are missing.
- When no server watched (a `kic run` killed with its temporary server, a machine off): a
  worker records the process of each flow run it starts in the run's `infrastructure_pid`
  ("host:pid"), and a flow run in `kic run`'s own process records itself the same way. A run
  left Running or Pending whose recorded process is known dead (on this machine: gone, or
  started before the machine's last boot) is set to Crashed when `kic serve` or `kic run`
  starts. Runs of other machines are left to the automation.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.runtime import flow_run
from prefect.states import Crashed

from warehouse.util import process_alive

PROC_STAT = Path("/proc/stat")
CRASH_AUTOMATION = "kic: mark flow runs whose heartbeats stopped as crashed"
MISSED_HEARTBEATS = 3


def record_process() -> None:
    """Record this process as the current flow run's (unless a worker recorded the one it started)."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.id)
        if not run.infrastructure_pid:
            client.update_flow_run(run.id, infrastructure_pid=f"{socket.gethostname()}:{os.getpid()}")


def boot_time() -> datetime | None:
    """When this machine last booted (Linux), else None."""
    try:
        btime = next(line for line in PROC_STAT.read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    return datetime.fromtimestamp(int(btime.split()[1]), UTC)


def process_died(run: FlowRun, booted: datetime | None) -> bool:
    """Whether the run's recorded process is known to have ended."""
    host, _, pid = (run.infrastructure_pid or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if booted is not None and run.start_time is not None and run.start_time < booted:
        return True  # its process died with the machine (a new one may have its pid)
    return not process_alive(int(pid))


def crash_abandoned_runs(client: SyncPrefectClient | None = None) -> list[FlowRun]:
    """Set to Crashed every Running or Pending flow run whose process is known dead; return them.
    Without `client`, through a client of the API Prefect is pointed at."""
    if client is None:
        with get_client(sync_client=True) as opened:
            return crash_abandoned_runs(opened)
    states = FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=states)))
    booted = boot_time()
    crashed = [run for run in runs if process_died(run, booted)]
    for run in crashed:
        message = (
            f"its process ({run.infrastructure_pid}) ended without reporting an end (killed, or the machine "
            "restarted): marked crashed at the next start of kic serve or kic run"
        )
        client.set_flow_run_state(run.id, Crashed(message=message), force=True)
    return crashed


def ensure_crash_automation() -> None:
    """Create (or bring up to date) the server's automation that marks a flow run Crashed once
    MISSED_HEARTBEATS heartbeats in a row are missing (Prefect's "detect zombie flows")."""
    from prefect.automations import Automation
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.settings import get_current_settings

    heartbeat = get_current_settings().flows.heartbeat_frequency or 180
    wanted = Automation(
        name=CRASH_AUTOMATION,
        description=f"A flow run that sent no event for {MISSED_HEARTBEATS} heartbeats ({heartbeat} s each) "
        "has lost its process: marked Crashed (set up by kic serve)",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},  # another heartbeat, or any change of state
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=MISSED_HEARTBEATS * heartbeat),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"its process sent no heartbeat for {MISSED_HEARTBEATS * heartbeat} s (killed, or its "
                "machine stopped): marked crashed by the server",
            )
        ],
    )
    try:
        existing = Automation.read(name=CRASH_AUTOMATION)
    except ValueError:
        wanted.create()
        return
    if existing.trigger != wanted.trigger or existing.actions != wanted.actions:
        wanted.id = existing.id
        wanted.update()
