"""The Prefect API that `kic run` records its flow runs in.

A configured PREFECT_API_URL, else the local server `kic serve` runs (when it answers),
else a temporary server for this run (Prefect's default), its runs kept in PREFECT_HOME.
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

    configured = PREFECT_API_URL.value()
    if configured:
        yield f"the server at {configured} (PREFECT_API_URL)"
    elif answers(LOCAL_SERVER_API):
        with temporary_settings({PREFECT_API_URL: LOCAL_SERVER_API}):
            yield f"the local server at {LOCAL_SERVER_API} (kic serve)"
    else:
        with temporary_settings({PREFECT_SERVER_ANALYTICS_ENABLED: False}):
            yield "a temporary local server (runs kept in PREFECT_HOME; `kic serve` shows them)"
