"""crawl-shard: one shard of a nightly crawl, as its own flow run on any worker of the work pool.

The nightly flow records the crawl in the landing area and starts one run of this flow's
deployment per shard; each worker crawls with its own egress IP and its own credentials (its
environment, or the Prefect Secret block named for the shard) and lands Parquet files. It
never opens the warehouse: the nightly flow loads what landed once every shard has ended.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.runs import record_process
from flows.tasks import as_task
from pipeline import steps
from pipeline.crawl import CrawlRequest
from pipeline.settings import load_settings


# Not retried as a flow: its crawl task retries (a crawler that died, the warehouse held), and
# a new attempt crawls only what the last one did not land. Retries nested in retries would
# launch the crawler up to (1 + flow retries) × (1 + task retries) times.
@flow(name="crawl-shard", flow_run_name="crawl-shard-{crawl_key}-{shard}")
def crawl_shard(
    crawl_key: str,
    shard: str,
    landing_url: str,
    source: str = "web",
    date: dt.date | None = None,
    base_url: str | None = None,
    config: str | None = None,
) -> dict:
    """Crawl one shard of a recorded crawl and land what it fetches."""
    record_process()  # so that a run whose process dies is marked crashed
    settings = load_settings(config, landing_url=landing_url)
    request = CrawlRequest(source=source, as_of=date, base_url=base_url)
    run = as_task(steps.crawl)(settings, request, crawl_key, shard)
    return {"crawl_key": crawl_key, "shard": shard, "accounts": run.accounts, "status": run.status}
