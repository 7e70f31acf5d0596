"""nightly-refresh: crawl → validate the new raw rows → derive and validate features → publish."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from flows.tasks import IO_TASK, PURE_TASK, publish
from kic.crawl import CrawlRequest, CrawlSummary, run_crawl
from kic.errors import KicError
from kic.settings import Settings, load_settings
from transforms import validation as checks
from transforms.features import compute_features, write_features
from warehouse.db import connect
from warehouse.quality import (
    previous_crawl_counts,
    previous_feature_count,
    quarantine_frame,
    store_validations,
)

CRAWL_ROWS = {
    "raw.profiles": "SELECT * FROM raw.profiles WHERE crawl_id = ? ORDER BY username",
    "raw.posts": "SELECT * FROM raw.posts WHERE crawl_id = ? ORDER BY post_id",
}


class ValidationFailed(KicError):
    """A table-level expectation failed: the run stops before features change."""


def run_name() -> str:
    day = flow_run.parameters.get("date") or load_settings().today()
    return f"nightly-refresh-{day}-{flow_run.parameters.get('source', 'web')}"


@task(name="crawl", **IO_TASK)
def crawl(settings: Settings, request: CrawlRequest) -> CrawlSummary:
    """Run the Scrapy spider in a subprocess and log its outcome and stats."""
    logger = get_run_logger()
    summary = run_crawl(settings, request)
    logger.info(
        "crawl %d (%s, %s): %d requested, %d profiles, %d posts; outcomes %s; log %s",
        summary.crawl_id, summary.source, summary.status, summary.accounts_requested,
        summary.profiles_written, summary.posts_written, summary.outcomes, summary.log_file,
    )
    logger.info("Scrapy stats of crawl %d: %s", summary.crawl_id, summary.stats)
    if summary.message:
        logger.warning("crawl %d: %s", summary.crawl_id, summary.message)
    return summary


@task(name="load-crawl-rows", **IO_TASK)
def load_crawl_rows(settings: Settings, summary: CrawlSummary) -> tuple[dict[str, pd.DataFrame], tuple | None]:
    """Read the new crawl's raw rows and the previous crawl's row counts."""
    with connect(settings.warehouse) as con:
        rows = {table: con.execute(sql, [summary.crawl_id]).df() for table, sql in CRAWL_ROWS.items()}
        previous = previous_crawl_counts(con, summary.crawl_id, summary.source)
    return rows, previous


@task(name="validate-raw", **PURE_TASK)
def validate_raw(settings: Settings, rows: dict[str, pd.DataFrame], previous: tuple | None, crawl_id: int):
    """Run the raw profiles, raw posts and volume suites; find the rows to quarantine."""
    validator = checks.Validator(settings.data_docs_path, settings.validation_results_path)
    run = f"crawl-{crawl_id}"
    profiles = validator.validate(rows["raw.profiles"], checks.raw_profiles_suite(), run)
    posts = validator.validate(rows["raw.posts"], checks.raw_posts_suite(), run)
    volume = validator.validate(
        checks.volume_frame({
            "raw.profiles": (len(rows["raw.profiles"]), previous[0] if previous else None),
            "raw.posts": (len(rows["raw.posts"]), previous[1] if previous else None),
        }),
        checks.volume_suite(), run, table_level=True,
    )
    quarantine = pd.concat([
        quarantine_frame(profiles, rows["raw.profiles"], "raw.profiles", ["crawl_id", "username"]),
        quarantine_frame(posts, rows["raw.posts"], "raw.posts", ["crawl_id", "post_id"]),
    ])
    return [profiles, posts, volume], quarantine


@task(name="store-validation", **IO_TASK)
def store_validation(settings: Settings, validations, quarantine: pd.DataFrame, crawl_id=None, feature_date=None) -> None:
    """Record the validation results and quarantined rows in the warehouse."""
    with connect(settings.warehouse) as con:
        store_validations(con, validations, quarantine, crawl_id=crawl_id, feature_date=feature_date)


@task(name="require-table-checks", **PURE_TASK)
def require_table_checks(validations) -> None:
    """Fail the run if a table-level expectation (schema, volume) failed."""
    failed = [f"{v.suite}: {e.expectation} (observed {e.observed_value})"
              for v in validations for e in v.failed if e.level == "table"]
    if failed:
        raise ValidationFailed("table-level validation failed, features left as they were: " + "; ".join(failed))


@task(name="compute-features", **IO_TASK)
def load_features(settings: Settings, day: dt.date) -> tuple[pd.DataFrame, int | None]:
    """Compute the date's feature rows in DuckDB (read only) and the previous date's count."""
    with connect(settings.warehouse) as con:
        return compute_features(con, day), previous_feature_count(con, day)


@task(name="validate-features", **PURE_TASK)
def validate_features(settings: Settings, features: pd.DataFrame, previous: int | None, day: dt.date):
    """Run the features and volume suites; the rows that fail stay out of the features."""
    validator = checks.Validator(settings.data_docs_path, settings.validation_results_path)
    run = f"features-{day}"
    result = validator.validate(features, checks.features_suite(), run)
    volume = validator.validate(
        checks.volume_frame({"features.influencer_features": (len(features), previous)}),
        checks.volume_suite(), run, table_level=True,
    )
    quarantine = quarantine_frame(result, features, "features.influencer_features", ["username", "feature_date"])
    keep = features.drop(index=features.index[list(result.failing_rows())])
    return [result, volume], quarantine, keep


@task(name="write-features", **IO_TASK)
def store_features(settings: Settings, day: dt.date, features: pd.DataFrame) -> None:
    """Replace the date's features in one transaction."""
    with connect(settings.warehouse) as con:
        write_features(con, day, features)


@task(name="nightly-artifacts", **PURE_TASK)
def report(summary: CrawlSummary, validations, quarantined: int, features: pd.DataFrame) -> None:
    """Crawl outcomes and the validation summary, as Prefect artifacts."""
    create_table_artifact(
        key="nightly-crawl-outcomes",
        table=[{"status": status, "accounts": n} for status, n in summary.outcomes.items()],
        description=f"Crawl {summary.crawl_id} ({summary.source}, {summary.status}) as of {summary.as_of_date}",
    )
    lines = ["| suite | rows | checks passed | checks failed |", "|---|---:|---:|---:|"]
    lines += [f"| {v.suite} | {v.rows_validated} | {len(v.expectations) - len(v.failed)} | {len(v.failed)} |"
              for v in validations]
    failed = [f"- `{v.suite}`: {e.expectation}: {e.unexpected_count or 0} row(s)" for v in validations for e in v.failed]
    clusterable = int(features["is_clusterable"].sum()) if len(features) else 0
    create_markdown_artifact(
        key="nightly-validation",
        markdown="\n".join([
            f"# Validation of crawl {summary.crawl_id}", "", *lines, "",
            f"**Rows quarantined:** {quarantined}", "", *(["**Failed checks:**", *failed] if failed else []), "",
            f"**Features written:** {len(features)} influencers, {clusterable} clusterable.",
        ]),
        description="Great Expectations results; Data Docs in the data_docs folder",
    )


@flow(name="nightly-refresh", flow_run_name=run_name)
def nightly_refresh(
    source: str = "web",
    accounts: list[str] | None = None,
    tag: str | None = None,
    date: dt.date | None = None,
    base_url: str | None = None,
) -> dict:
    """Crawl (the watchlist by default), validate the new rows, derive features, publish."""
    settings = load_settings()
    day = date or settings.today()
    summary = crawl(settings, CrawlRequest(source=source, usernames=accounts, tag=tag, as_of=day, base_url=base_url))
    rows, previous = load_crawl_rows(settings, summary)
    raw_validations, raw_quarantine = validate_raw(settings, rows, previous, summary.crawl_id)
    store_validation(settings, raw_validations, raw_quarantine, crawl_id=summary.crawl_id)
    require_table_checks(raw_validations)
    features, previous_count = load_features(settings, day)
    feature_validations, feature_quarantine, keep = validate_features(settings, features, previous_count, day)
    store_validation(settings, feature_validations, feature_quarantine, feature_date=day)
    require_table_checks(feature_validations)
    store_features(settings, day, keep)
    publish(settings)
    quarantined = sum(len(q.drop_duplicates(["table_name", "row_key"])) for q in (raw_quarantine, feature_quarantine))
    report(summary, raw_validations + feature_validations, quarantined, keep)
    return {"crawl_id": summary.crawl_id, "feature_date": day.isoformat(), "features": len(keep),
            "quarantined": quarantined}
