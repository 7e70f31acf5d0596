"""Flow run names that say what a run is about and when it started, unique for runs of one day.

A name's date (the day a crawl describes, a snapshot's feature date) is a day in the
settings' time zone, and so is the start time that follows it, written with the zone's
abbreviation: `nightly-refresh-2026-12-02-web-030000-KST` started at 03:00:00 in Seoul,
whatever zone the Prefect UI shows its times in (the browser's; UTC on a server). The start
is the run's scheduled start (when it was created, for a run started by hand), to the second.
Once a run knows what it made, it is renamed after it (crawl 17, snapshot 5), keeping that start.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from prefect import task
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from flows.tasks import IO_TASK


def started(timezone: str) -> str:
    """This flow run's scheduled start in `timezone`: HHMMSS and the zone's abbreviation ("030000-KST")."""
    local = datetime.fromtimestamp(flow_run.scheduled_start_time.timestamp(), ZoneInfo(timezone))
    zone = local.strftime("%Z")
    return f"{local:%H%M%S}-{zone if zone[:1].isalpha() else 'UTC' + zone}"  # "+0530" has no letters: UTC+0530


@task(name="name_run", **IO_TASK)
def name_run(name: str) -> str:
    """Rename this flow run after what it made."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name)
    return name
