"""nightly-refresh: crawl → validate the new raw rows → derive and validate features → publish."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from flows.tasks import PURE_TASK, as_task
from pipeline import jobs
from pipeline.crawl import CrawlRequest
from pipeline.settings import load_settings


def run_name() -> str:
    params = flow_run.parameters
    day = params.get("date") or load_settings(params.get("config")).today()
    return f"nightly-refresh-{day}-{params.get('source', 'web')}"


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


@flow(name="nightly-refresh", flow_run_name=run_name)
def nightly_refresh(
    source: str = "web",
    accounts: list[str] | None = None,
    tag: str | None = None,
    date: dt.date | None = None,
    base_url: str | None = None,
    config: str | None = None,
    warehouse: str | None = None,
) -> dict:
    """Crawl (the watchlist by default), validate the new rows, derive features, publish."""
    settings = load_settings(config, **({"warehouse": warehouse} if warehouse else {}))
    request = CrawlRequest(
        source=source, usernames=accounts, tag=tag, as_of=date or settings.today(), base_url=base_url
    )
    refresh = jobs.refresh(settings, request, call=as_task)
    nightly_artifacts(refresh)
    return {
        "crawl_id": refresh.crawl.crawl_id,
        "feature_date": refresh.features.summary.feature_date.isoformat(),
        "features": refresh.features.summary.influencers,
        "quarantined": refresh.quarantined,
    }
