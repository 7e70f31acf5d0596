"""nightly-refresh: plan within the quota budget → crawl (in shards) → load → validate the new raw rows →
derive and validate features → publish; the plan, outcomes and validation as artifacts, failed or not."""

from __future__ import annotations

import datetime as dt

import pandas as pd
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
from warehouse.nights import NightReview


def run_name() -> str:
    """nightly-refresh-<day crawled>-<source>-<start, HHMMSS>-<zone> (flows/run_names.py)."""
    params = flow_run.parameters
    settings = load_settings(params.get("config"))
    day = params.get("date") or settings.today()
    return f"nightly-refresh-{day}-{params.get('source', 'web')}-{started(settings.timezone)}"


def plan_markdown(review: NightReview) -> str:
    plan = review.plan
    if plan is None:
        return "No plan: the crawl was not planned (a crawl opened by hand)."
    lines = [
        f"# Plan of {plan['as_of_date']} ({plan['source']})",
        "",
        f"**{plan['arithmetic']}.**",
        "",
        f"Budget: {int(plan['credentials'])} credential(s) x {int(plan['calls_per_window']):,} calls per "
        f"{float(plan['window_seconds']):,.0f} s window x {float(plan['target_usage']):.0%} target usage x "
        f"{float(plan['crawl_window_hours']):g} h crawl window = {int(plan['budget_calls']):,} calls; at "
        f"{float(plan['calls_per_account']):.2f} calls an account, {int(plan['budget_accounts']):,} accounts.",
        "",
        "| why planned | accounts | oldest observation |",
        "|---|---:|---|",
    ]
    for r in plan["reasons"].itertuples():
        oldest = "" if pd.isna(r.oldest_observed_on) else pd.Timestamp(r.oldest_observed_on).date()
        lines.append(f"| {r.reason} | {int(r.accounts):,} | {oldest} |")
    return "\n".join(lines)


def validation_markdown(review: NightReview) -> str:
    lines = [f"# Validation of crawl {review.crawl_id} ({review.crawl_key})", ""]
    if review.validations.empty:
        return "\n".join([*lines, "Nothing was validated: the night stopped before (see the run's logs)."])
    lines += [
        "| suite | rows | checks passed | checks failed | rows quarantined | table checks |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {v.suite} | {int(v.rows_validated):,} | {int(v.passed)} | {int(v.failed)} | {int(v.rows_quarantined):,} "
        f"| {'passed' if v.table_level_ok else '**failed**'} |"
        for v in review.validations.itertuples()
    ]
    quarantined = int(review.validations["rows_quarantined"].sum())
    lines += ["", f"**Rows quarantined:** {quarantined}", ""]
    if len(review.failed_expectations):
        lines.append("**Failed checks:**")
        for e in review.failed_expectations.itertuples():
            count = 0 if pd.isna(e.unexpected_count) else int(e.unexpected_count)
            observed = f": {e.observed_value}" if isinstance(e.observed_value, str) else ""
            lines.append(f"- `{e.suite}` ({e.level}): {e.expectation}: {count} row(s){observed}")
        lines.append("")
    features = review.features
    if features:
        lines.append(
            f"**Features written:** {int(features['influencers'])} influencers, {int(features['clusterable'])} "
            f"clusterable, {int(features['stale'])} stale; observations {features['median_age_days']:.0f} days old "
            f"(median), {features['p95_age_days']:.0f} (p95); {features['older_than_7_days']:.0%} older than 7 days."
        )
    else:
        lines.append("**Features written:** none tonight (the features stay as they were).")
    return "\n".join(lines)


@task(name="nightly_artifacts", **PURE_TASK)
def nightly_artifacts(review: NightReview) -> None:
    """Publish the night's plan, its outcomes by reason (with example accounts) and its validation as artifacts."""
    create_markdown_artifact(
        key="nightly-plan", markdown=plan_markdown(review), description="Which accounts tonight crawls, and why"
    )
    counts = ", ".join(f"{status} {n:,}" for status, n in review.counts.items()) or "nothing stored"
    create_table_artifact(
        key="nightly-crawl-outcomes",
        table=[
            {
                "status": r.status,
                "reason": r.reason,
                "accounts": int(r.accounts),
                "examples": ", ".join(r.examples),
            }
            for r in review.reasons.itertuples()
        ]
        or [{"status": None, "reason": "nothing stored", "accounts": 0, "examples": ""}],
        description=f"Crawl {review.crawl_id} ({review.status}) as of {review.as_of}: {review.planned:,} planned; "
        f"{counts}",
    )
    create_markdown_artifact(
        key="nightly-validation",
        markdown=validation_markdown(review),
        description="Great Expectations results; Data Docs in the data_docs folder",
    )


def reviewed(review: NightReview) -> None:
    """Once the night is reviewed (failed or not): name the run after the crawl it loaded, attach the artifacts."""
    if review.crawl_id is not None:
        name_run(f"{flow_run.name}-crawl-{review.crawl_id}")  # the crawl it loaded, in raw.crawl_runs
    nightly_artifacts(review)


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
    quotas: dict | None = None,
) -> dict:
    """Plan within the quota budget, crawl (in `shards` parts), load, validate, derive features, publish."""
    record_process()  # so that a run whose process dies is marked crashed
    overrides = {"warehouse": warehouse} if warehouse else {}
    settings = load_settings(config, **overrides)
    if quotas:  # e.g. `kic run`: the sandbox's quotas, as an operator sets a real source's
        settings = load_settings(config, **overrides, quotas={**settings.quotas.model_dump(), **quotas})
    request = CrawlRequest(
        source=source, usernames=accounts, tag=tag, as_of=date or settings.today(), base_url=base_url
    )
    shards = shards or settings.crawl_shards
    failed: list[str] = []
    runner = shard_runner(settings, request, config, failed) if shards > 1 else None
    try:
        refresh = jobs.refresh(settings, request, call=as_task, shards=shards, run_shards=runner, on_review=reviewed)
    except KicError as exc:
        if failed:
            raise KicError(f"shard(s) failed after their retries ({'; '.join(failed)}); {exc}") from exc
        raise
    if failed:
        shards_failed = "; ".join(failed)
        raise KicError(f"shard(s) failed after their retries, their accounts recorded as not crawled: {shards_failed}")
    review = refresh.review
    return {
        "crawl_id": refresh.crawl.crawl_id,
        "feature_date": refresh.features.summary.feature_date.isoformat(),
        "features": refresh.features.summary.influencers,
        "quarantined": refresh.quarantined,
        "planned": review.planned,
        "deferred": review.deferred,
        "failed": review.failed,
    }
