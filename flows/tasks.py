"""Turning the pipeline's steps into Prefect tasks: named as the step, retried only if it does I/O,
and then only on errors a retry can fix.

A step becomes a task only through `as_task`, so a step has one retry policy wherever it runs.
What a flow does itself (its artifacts, its run's name, starting a shard's run) is not a step:
those few tasks are written with Prefect's own `@task` beside their flow, with one of the
policies below, or none where a retry belongs elsewhere (a shard's run retries itself)."""

import errno
import logging
from collections.abc import Callable
from functools import cache

import httpx
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from pipeline.steps import is_io
from warehouse.errors import KicError

# The pipeline logs as "kic.*"; with PREFECT_LOGGING_EXTRA_LOGGERS=kic (prefect.yaml, `kic run`)
# those lines reach the runs' logs in the Prefect UI: let its INFO lines through.
logging.getLogger("kic").setLevel(logging.INFO)

# The operating system's errors that pass: the network, a resource busy for a moment.
TRANSIENT_ERRNOS = {
    errno.EAGAIN,
    errno.EBUSY,
    errno.ECONNABORTED,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.ENETUNREACH,
    errno.EPIPE,
    errno.ETIMEDOUT,
}


def is_transient(exc: BaseException) -> bool:
    """Whether the same step, run again a little later, may succeed: the warehouse held by
    another process, a crawler that died, the network, a server's 5xx. A bad input, a full
    disk, a damaged file or a bug fails the same way again."""
    if isinstance(exc, KicError):
        return exc.transient
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    if isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


def retry_transient(task, task_run, state) -> bool:
    """Prefect's retry condition: retry a failed I/O task only when its error is transient."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


# Steps that touch the warehouse, a file or a subprocess: retried with backoff, on transient errors.
IO_TASK = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_condition_fn": retry_transient,
    "cache_policy": NO_CACHE,
}
# Computations: a failure would fail again, so they are not retried.
PURE_TASK = {"retries": 0, "cache_policy": NO_CACHE}


@cache
def as_task(step: Callable):
    """The Prefect task that runs `step` (one per step, so runs show each step by its name)."""
    return task(step, name=step.__name__, **(IO_TASK if is_io(step) else PURE_TASK))
