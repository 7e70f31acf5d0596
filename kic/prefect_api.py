"""The Prefect API that `kic run` records its flow runs in.

A configured PREFECT_API_URL, else the local server `kic serve` runs (when it answers),
else a temporary server for this run, its runs kept in PREFECT_HOME.

The temporary server runs in a session of its own: a Ctrl-C at the terminal reaches `kic
run` only, whose flow engine records the crashed run in the server, then the server is
stopped. (Prefect's own temporary server shares the terminal's process group: Ctrl-C killed
it first, and reporting the crash to it retried for minutes.)
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

LOCAL_SERVER_API = "http://127.0.0.1:4200/api"


def answers(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


@contextmanager
def prefect_api() -> Iterator[str]:
    """Point Prefect at the API to use for the duration; yield what it is, readable."""
    # The pipeline logs as "kic.*": Prefect sends those lines to the run's logs too. Set
    # before Prefect configures its logging (on first import).
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "kic")
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings

    from flows.runs import crash_abandoned_runs

    configured = PREFECT_API_URL.value()
    if configured:
        crash_abandoned_runs()
        yield f"the server at {configured} (PREFECT_API_URL)"
    elif answers(LOCAL_SERVER_API):
        with temporary_settings({PREFECT_API_URL: LOCAL_SERVER_API}):
            crash_abandoned_runs()
            yield f"the local server at {LOCAL_SERVER_API} (kic serve)"
    else:
        from kic.serve import PrefectStack, free_port

        server = PrefectStack(port=free_port(), deploy=False, own_session=True, env={"PREFECT_UI_ENABLED": "false"})
        # Stopping the server sends it first what this process still holds (PrefectStack.stop).
        with server, temporary_settings({PREFECT_API_URL: server.api_url, PREFECT_SERVER_ANALYTICS_ENABLED: False}):
            crash_abandoned_runs()
            yield f"a temporary local server at {server.api_url} (its runs kept in PREFECT_HOME)"
