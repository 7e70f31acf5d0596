"""nightly-refresh: crawl (in shards) → load → validate the new raw rows → derive and validate features → publish."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.deployments import run_deployment
from prefect.runtime import flow_run

from flows.run_names import name_run, started
from flows.runs import record_process
from flows.tasks import PURE_TASK, as_task
from pipeline import jobs
from pipeline.crawl import CrawlRequest
from pipeline.settings import Settings, load_settings
from warehouse.errors import KicError


def run_name() -> str:
    """nightly-refresh-<day crawled>-<source>-<start, HHMMSS>-<zone> (flows/run_names.py)."""
    params = flow_run.parameters
    settings = load_settings(params.get("config"))
    day = params.get("date") or settings.today()
    return f"nightly-refresh-{day}-{params.get('source', 'web')}-{started(settings.timezone)}"


@task(name="nightly_artifacts", **PURE_TASK)
def nightly_artifacts(refresh: jobs.Refresh) -> None:
    """Publish the crawl's outcomes and the validation summary as Prefect artifacts."""
    crawl = refresh.crawl
    create_table_artifact(
        key="nightly-crawl-outcomes",
        table=[{"status": status, "accounts": n} for status, n in crawl.outcomes.items()],
        description=f"Crawl {crawl.crawl_id} ({crawl.source}, {crawl.status}) as of {crawl.as_of_date}",
    )
    suites = refresh.validation.suites + refresh.features.validation.suites
    lines = ["| suite | rows | checks passed | checks failed |", "|---|---:|---:|---:|"]
    lines += [
        f"| {v.suite} | {v.rows_validated} | {len(v.expectations) - len(v.failed)} | {len(v.failed)} |" for v in suites
    ]
    failed = [f"- `{v.suite}`: {e.expectation}: {e.unexpected_count or 0} row(s)" for v in suites for e in v.failed]
    summary = refresh.features.summary
    create_markdown_artifact(
        key="nightly-validation",
        markdown="\n".join(
            [
                f"# Validation of crawl {crawl.crawl_id}",
                "",
                *lines,
                "",
                f"**Rows quarantined:** {refresh.quarantined}",
                "",
                *(["**Failed checks:**", *failed] if failed else []),
                "",
                f"**Features written:** {summary.influencers} influencers, {summary.clusterable} clusterable.",
            ]
        ),
        description="Great Expectations results; Data Docs in the data_docs folder",
    )


@task(name="run_shard", retries=0, cache_policy=NO_CACHE)
def run_shard(deployment: str, parameters: dict) -> dict:
    """Start one shard's crawl-shard flow run on the work pool and wait for it to end."""
    # Not retried here: the crawl-shard flow retries itself, on whichever worker runs it.
    state = run_deployment(deployment, parameters=parameters, timeout=None, poll_interval=2).state
    return {"shard": parameters["shard"], "state": state.type.value, "message": state.message}


def shard_runner(settings: Settings, request: CrawlRequest, config: str | None, failed: list[str]):
    """Runs each shard as a flow run of the crawl-shard deployment, all at once; waits for every
    one, and adds the shards that still failed after their retries to `failed`."""

    def run_shards(crawl_key: str, shards: list[str]) -> None:
        base = {
            "crawl_key": crawl_key,
            "landing_url": settings.landing_root,
            "source": request.source,
            "date": request.as_of.isoformat(),
            "base_url": request.base_url,
            "config": config,
        }
        futures = [run_shard.submit(settings.crawl_shard_deployment, {**base, "shard": s}) for s in shards]
        # The other shards' rows are kept: the load closes the crawl as interrupted, and
        # every account of a failed shard gets a "not crawled" outcome.
        ended = [future.result() for future in futures]
        failed.extend(f"{e['shard']}: {e['state']} ({e['message']})" for e in ended if e["state"] != "COMPLETED")

    return run_shards


@flow(name="nightly-refresh", flow_run_name=run_name)
def nightly_refresh(
    source: str = "web",
    accounts: list[str] | None = None,
    tag: str | None = None,
    date: dt.date | None = None,
    base_url: str | None = None,
    config: str | None = None,
    warehouse: str | None = None,
    shards: int | None = None,
) -> dict:
    """Crawl (the watchlist by default, in `shards` parts), load, validate the new rows, derive features, publish."""
    record_process()  # so that a run whose process dies is marked crashed
    settings = load_settings(config, **({"warehouse": warehouse} if warehouse else {}))
    request = CrawlRequest(
        source=source, usernames=accounts, tag=tag, as_of=date or settings.today(), base_url=base_url
    )
    shards = shards or settings.crawl_shards
    failed: list[str] = []
    runner = shard_runner(settings, request, config, failed) if shards > 1 else None
    refresh = jobs.refresh(settings, request, call=as_task, shards=shards, run_shards=runner)
    name_run(f"{flow_run.name}-crawl-{refresh.crawl.crawl_id}")  # the crawl it loaded, in raw.crawl_runs
    nightly_artifacts(refresh)
    if failed:
        shards_failed = "; ".join(failed)
        raise KicError(f"shard(s) failed after their retries, their accounts recorded as not crawled: {shards_failed}")
    return {
        "crawl_id": refresh.crawl.crawl_id,
        "feature_date": refresh.features.summary.feature_date.isoformat(),
        "features": refresh.features.summary.influencers,
        "quarantined": refresh.quarantined,
    }
