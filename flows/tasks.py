"""Turning the pipeline's steps into Prefect tasks: named as the step, retried only if it does I/O."""

import logging
from collections.abc import Callable
from functools import cache

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from pipeline.steps import is_io

# The pipeline logs as "kic.*"; with PREFECT_LOGGING_EXTRA_LOGGERS=kic (prefect.yaml, `kic run`)
# those lines reach the runs' logs in the Prefect UI: let its INFO lines through.
logging.getLogger("kic").setLevel(logging.INFO)

# Steps that touch the warehouse, a file or a subprocess: retried with backoff.
IO_TASK = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=10), "cache_policy": NO_CACHE}
# Computations: a failure would fail again, so they are not retried.
PURE_TASK = {"retries": 0, "cache_policy": NO_CACHE}


@cache
def as_task(step: Callable):
    """The Prefect task that runs `step` (one per step, so runs show each step by its name)."""
    return task(step, name=step.__name__, **(IO_TASK if is_io(step) else PURE_TASK))
