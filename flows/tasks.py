"""What the flows share: task options (only I/O retries; nothing cached) and the publish task."""

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from kic.settings import Settings
from warehouse.publish import publish_copy

# Tasks that touch the warehouse, the network or a subprocess: retried with backoff.
IO_TASK = {"retries": 3, "retry_delay_seconds": exponential_backoff(backoff_factor=10), "cache_policy": NO_CACHE}
# Pure computation: a failure would fail again, so it is not retried.
PURE_TASK = {"retries": 0, "cache_policy": NO_CACHE}


@task(name="publish-analytics-copy", **IO_TASK)
def publish(settings: Settings) -> str:
    """Refresh the analysts' read-only copy of the warehouse."""
    return str(publish_copy(settings.warehouse, settings.analytics_path))
