"""The pipeline's steps, one function each: the Prefect flows run them as tasks (named as the
functions), the CLI calls them directly, through the same chains (`pipeline.jobs`).

A step either does I/O (the warehouse, a file, a subprocess) or computes. `@io_step` marks
the first kind, which flows retry; `@pure_step` the second, which would fail again and is
not retried. A step that reads does not write. Steps get the settings object as an argument
and hand lower layers only what they need.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from pipeline.crawl import CrawlRequest, CrawlSummary, run_crawl
from pipeline.imports import LoadResult, store_study_csv
from pipeline.settings import ClusteringConfig, Settings
from pipeline.study_csv import StudyCsv
from pipeline.study_csv import read_study_csv as parse_study_csv
from transforms import features as feature_sql
from warehouse import quality, raw, watchlist
from warehouse.db import connect, schema_version
from warehouse.errors import KicError
from warehouse.publish import publish_copy
from warehouse.snapshots import cluster_table
from warehouse.snapshots import write_snapshot as store_snapshot
from warehouse.vocabulary import CRAWL_SOURCES

log = logging.getLogger("kic.pipeline")

IO, PURE = "io", "pure"

CRAWL_ROWS = {
    "raw.profiles": "SELECT * FROM raw.profiles WHERE crawl_id = ? ORDER BY username",
    "raw.posts": "SELECT * FROM raw.posts WHERE crawl_id = ? ORDER BY post_id",
    "raw.imported_media_means": "SELECT * FROM raw.imported_media_means WHERE crawl_id = ? ORDER BY username",
}
CRAWL_SOURCE = "SELECT source FROM raw.crawl_runs WHERE crawl_id = ?"
UNVALIDATED_CRAWLS = "SELECT crawl_id FROM staging.unvalidated_crawls ORDER BY crawl_id"
CHANGES = """
SELECT username, previous_persona, current_persona, change FROM clusters.changes ORDER BY change, username
"""


def io_step(step: Callable) -> Callable:
    step.step_kind = IO
    return step


def pure_step(step: Callable) -> Callable:
    step.step_kind = PURE
    return step


def is_io(step: Callable) -> bool:
    return step.step_kind == IO


class ValidationFailed(KicError):
    """A table-level expectation failed: the run stops before features change."""


@dataclass(frozen=True)
class CrawlRows:
    """One crawl's raw rows per table, the tables' declared columns and the previous crawl's counts."""

    crawl_id: int
    rows: dict[str, pd.DataFrame]
    columns: dict[str, list[str]]
    previous: dict[str, int] | None  # rows per table of the source's previous readable crawl


@dataclass(frozen=True)
class FeatureRows:
    """One date's feature rows as computed (not stored), the table's columns, the previous count."""

    feature_date: date
    rows: pd.DataFrame
    columns: list[str]
    previous: int | None


def open_warehouse(settings: Settings, read_only: bool = False):
    return connect(settings.warehouse, read_only=read_only, lock_wait_seconds=settings.lock_wait_seconds)


def validator(settings: Settings):
    # Imported here: Great Expectations takes seconds to import, and reading commands never need it.
    from transforms.validation import Validator

    return Validator(settings.data_docs_path, settings.validation_results_path)


# --- collect --------------------------------------------------------------------------------


@io_step
def crawl(
    settings: Settings, request: CrawlRequest, progress: Callable[[int, int], None] | None = None
) -> CrawlSummary:
    """Run the Scrapy spider in a subprocess; log what it stored and its Scrapy stats."""
    summary = run_crawl(settings, request, progress)
    log.info(
        "crawl %d (%s, %s): %d requested, %d profiles, %d posts; outcomes %s; log %s",
        summary.crawl_id,
        summary.source,
        summary.status,
        summary.accounts_requested,
        summary.profiles_written,
        summary.posts_written,
        summary.outcomes,
        summary.log_file,
    )
    log.info("Scrapy stats of crawl %d: %s", summary.crawl_id, summary.stats)
    if summary.message:
        log.warning("crawl %d: %s", summary.crawl_id, summary.message)
    return summary


@io_step
def read_study_csv(path: Path) -> StudyCsv:
    """Read and check a CSV in the study's layout (nothing is stored yet)."""
    return parse_study_csv(path)


@io_step
def store_import(settings: Settings, path: Path, parsed: StudyCsv, as_of: date) -> LoadResult:
    """Store a parsed study CSV as one import run, in one transaction."""
    with open_warehouse(settings) as con:
        return store_study_csv(con, path, parsed, as_of)


@io_step
def watch(settings: Settings, usernames: list[str], added_from: str) -> int:
    """Add accounts to the watchlist; return how many were new."""
    with open_warehouse(settings) as con:
        return watchlist.add(con, usernames, added_from)


@io_step
def unwatch(settings: Settings, usernames: list[str]) -> int:
    """Remove accounts from the watchlist; return how many were watched."""
    with open_warehouse(settings) as con:
        return watchlist.remove(con, usernames)


@io_step
def upgrade_warehouse(settings: Settings) -> int:
    """Create the warehouse, or upgrade its schema and views; return its schema version."""
    with open_warehouse(settings) as con:
        return schema_version(con)


# --- validate -------------------------------------------------------------------------------


@io_step
def find_unvalidated_crawls(settings: Settings) -> list[int]:
    """Read which finished crawls and imports no validation has seen yet."""
    with open_warehouse(settings, read_only=True) as con:
        return [crawl_id for (crawl_id,) in con.execute(UNVALIDATED_CRAWLS).fetchall()]


@io_step
def read_crawl_rows(settings: Settings, crawl_id: int) -> CrawlRows:
    """Read one crawl's raw rows, the raw tables' columns and the previous crawl's row counts."""
    with open_warehouse(settings, read_only=True) as con:
        rows = {table: con.execute(sql, [crawl_id]).df() for table, sql in CRAWL_ROWS.items()}
        columns = {table: quality.table_columns(con, table) for table in CRAWL_ROWS}
        (source,) = con.execute(CRAWL_SOURCE, [crawl_id]).fetchall()[0]
        previous = None
        if source in CRAWL_SOURCES:  # an import is a file of its own: no volume to compare
            counts = quality.previous_crawl_counts(con, crawl_id, source) or (None, None)
            previous = dict(zip(("raw.profiles", "raw.posts"), counts, strict=True))
    return CrawlRows(crawl_id, rows, columns, previous)


@pure_step
def validate_crawl_rows(settings: Settings, crawl: CrawlRows):
    """Run the raw suites and the volume suite; find the rows to quarantine (renders Data Docs)."""
    from transforms.validation import validate_crawl

    return validate_crawl(validator(settings), crawl.crawl_id, crawl.rows, crawl.columns, crawl.previous)


@io_step
def store_validation(settings: Settings, validation) -> None:
    """Record validation results and quarantined rows in the warehouse, in one transaction."""
    with open_warehouse(settings) as con:
        quality.store_validations(con, *validation.frames(raw.utcnow()))


@pure_step
def require_table_checks(validation) -> None:
    """Fail the run if a table-level expectation (schema, volume) failed."""
    failed = validation.table_failures()
    if failed:
        raise ValidationFailed("table-level validation failed, features left as they were: " + "; ".join(failed))


# --- features -------------------------------------------------------------------------------


@io_step
def compute_features(settings: Settings, feature_date: date | None) -> FeatureRows:
    """Compute one date's feature rows in DuckDB (default: the latest validated data), without storing them."""
    with open_warehouse(settings, read_only=True) as con:
        day = feature_sql.feature_date_or_latest(con, feature_date)
        return FeatureRows(
            day,
            feature_sql.compute_features(con, day),
            quality.table_columns(con, "features.influencer_features"),
            quality.previous_feature_count(con, day),
        )


@pure_step
def validate_feature_rows(settings: Settings, features: FeatureRows):
    """Run the features and volume suites; return the validation and the rows that passed."""
    from transforms.validation import validate_features

    return validate_features(
        validator(settings), features.rows, features.columns, features.previous, features.feature_date
    )


@io_step
def write_features(settings: Settings, feature_date: date, rows: pd.DataFrame) -> feature_sql.FeatureSummary:
    """Replace one date's features with the validated rows, in one transaction."""
    with open_warehouse(settings) as con:
        feature_sql.write_features(con, feature_date, rows)
        return feature_sql.summarize_features(con, feature_date)


# --- cluster --------------------------------------------------------------------------------


@io_step
def read_features(settings: Settings, feature_date: date | None) -> tuple[feature_sql.ClusterableFeatures, date]:
    """Read the clusterable influencers of a feature date as arrays (default: the latest, refused if stale)."""
    with open_warehouse(settings, read_only=True) as con:
        day = feature_sql.feature_date_to_cluster(con, feature_date)
        return feature_sql.load_clusterable(con, day), day


@pure_step
def fit(features: feature_sql.ClusterableFeatures, clustering: ClusteringConfig, feature_date: date, probe=None):
    """Fit and score every candidate, name the published clusters as personas."""
    from models.recluster import no_probe, recluster  # scikit-learn: only commands that cluster need it

    result = recluster(features, clustering, feature_date, probe or no_probe)
    log.info(
        "%d influencers, %d candidates on the %s path; published %s (%d clusters)",
        result.n_influencers,
        len(result.candidates),
        result.parameters["path"],
        result.published,
        result.n_clusters,
    )
    return result


@io_step
def write_snapshot(settings: Settings, clustering) -> int:
    """Store the clustering as the next snapshot version, in one transaction."""
    with open_warehouse(settings) as con:
        return store_snapshot(con, clustering)


@io_step
def read_snapshot(settings: Settings, version: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a snapshot's cluster table and who changed persona since the one before."""
    with open_warehouse(settings, read_only=True) as con:
        return cluster_table(con, version), con.execute(CHANGES).df()


# --- publish --------------------------------------------------------------------------------


@io_step
def publish(settings: Settings) -> Path:
    """Refresh the analysts' read-only copy of the warehouse."""
    return publish_copy(settings.warehouse, settings.analytics_path, lock_wait_seconds=settings.lock_wait_seconds)
