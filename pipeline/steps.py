"""The pipeline's steps, one function each: the Prefect flows run them as tasks (named as the
functions), the CLI calls them directly, through the same chains (`pipeline.jobs`).

A step either does I/O (the warehouse, a file, a subprocess) or computes. `@io_step` marks
the first kind, which flows retry; `@pure_step` the second, which would fail again and is
not retried. A step that reads does not write. Steps get the settings object as an argument
and hand lower layers only what they need.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

import pipeline.crawl  # by its full name: `crawl` is a step here
from models.config import ClusteringConfig
from pipeline.crawl import CrawlRequest, CrawlSummary, OpenedCrawl, ShardRun
from pipeline.outputs import check_output
from pipeline.settings import Settings
from pipeline.storage import open_readable, open_warehouse, publish_copy
from readers import study_csv  # by its module: `read_study_csv` is a step here
from readers.study_csv import StudyCsv
from readers.study_import import LandedImport, land_study_csv
from transforms.export import Export, export_snapshot
from transforms.features import (
    CLUSTERABLE,
    ClusterableFeatures,
    FeatureStream,
    FeatureSummary,
    Fingerprint,
    feature_date_or_latest,
    feature_date_to_cluster,
    insert_features,
    load_clusterable,
    summarize_features,
)
from transforms.relations import view_sql
from warehouse import nights, quality, watchlist
from warehouse.db import schema_version
from warehouse.errors import KicError
from warehouse.landing import Landing
from warehouse.loading import load_crawl, remove_loaded
from warehouse.plans import Plan
from warehouse.snapshots import cluster_table, read_standing, store_snapshot, unchanged_snapshot
from warehouse.util import replace_folder, utcnow, write_atomically
from warehouse.vocabulary import CRAWL_SOURCES

if TYPE_CHECKING:  # slow imports (scikit-learn, Great Expectations, matplotlib): only the steps that need them
    from models.frames import Standing
    from models.recluster import Probe, SnapshotDraft
    from renderers.snapshot_page import Chart
    from transforms.report import ReportData
    from transforms.validation import Validation

log = logging.getLogger("kic.pipeline")

IO, PURE = "io", "pure"

CRAWL_SOURCE = "SELECT source FROM raw.crawl_runs WHERE crawl_id = ?"
# DuckDB's own memory while a step goes through a night's rows (its cache of the blocks
# scanned, the feature query's aggregates): bounded, so that the steps' memory follows the
# chunk and not the night; past it DuckDB spills to disk beside the warehouse.
STREAMING_DUCKDB_MEMORY = "256MB"
UNVALIDATED_CRAWLS = "SELECT crawl_id FROM staging.unvalidated_crawls ORDER BY crawl_id"
# Who changed persona since the snapshot before, and why: the largest moves first (changed,
# then new, dropped and renamed; within each, the biggest change in ER or active_rate), a few.
CHANGES_SHOWN = 50
CHANGES = """
SELECT username, previous_persona, current_persona, change, why FROM clusters.changes
ORDER BY list_position(['moved', 'changed', 'reframed', 'new', 'dropped', 'renamed'], change),
         greatest(abs(current_er - previous_er), abs(current_active_rate - previous_active_rate)) DESC NULLS LAST,
         username
LIMIT ?
"""
CHANGE_COUNTS = "SELECT change, count(*) FROM clusters.changes GROUP BY change ORDER BY 2 DESC, 1"


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
class FeatureRows:
    """One date's feature rows as validated: they stay in DuckDB (the feature query), and this
    says which to leave out and what validation saw."""

    feature_date: date
    validation: Validation
    fingerprint: Fingerprint  # of the rows validated: the write checks it writes those

    @property
    def quarantined(self) -> list[str]:
        """Usernames of the rows validation quarantined (a few): the write leaves them out."""
        return self.validation.quarantined_keys("features.influencer_features", "username")


def validator(settings: Settings):
    # Imported here: Great Expectations takes seconds to import, and reading commands never need it.
    from transforms.validation import Validator

    return Validator(settings.data_docs_path, settings.validation_results_path, render_docs=settings.data_docs)


# --- collect --------------------------------------------------------------------------------


@io_step
def plan_crawl(settings: Settings, request: CrawlRequest, shards: int = 1) -> Plan:
    """Check the source answers, then plan the night within its quota budget and store the plan."""
    plan = pipeline.crawl.plan_crawl(settings, request, shards)
    log.info("plan %s: %s", plan.crawl_key, plan.arithmetic())
    return plan


@io_step
def open_crawl(settings: Settings, request: CrawlRequest, plan: Plan) -> OpenedCrawl:
    """Record the planned crawl, shard by shard with its pacing, in the landing area."""
    opened = pipeline.crawl.open_crawl(settings, request, plan)
    log.info("crawl %s: %d account(s) in %d shard(s)", opened.crawl_key, opened.accounts, len(opened.shards))
    return opened


@io_step
def crawl(
    settings: Settings,
    request: CrawlRequest,
    crawl_key: str,
    shard: str,
    progress: Callable[[int, int], None] | None = None,
) -> ShardRun:
    """Run the Scrapy spider on one shard in a subprocess, landing what it fetches (never the warehouse)."""
    run = pipeline.crawl.run_shard(settings, request, crawl_key, shard, progress)
    log.info("crawl %s %s: %d account(s), %s; log %s", crawl_key, shard, run.accounts, run.status, run.log_file)
    if run.message:
        log.warning("crawl %s %s: %s", crawl_key, shard, run.message)
    return run


@io_step
def find_unloaded_crawls(settings: Settings) -> list[str]:
    """Read which crawls in the landing area have ended (or were abandoned) without being loaded."""
    finished, running = pipeline.crawl.unloaded_crawls(settings)
    for key in running:
        log.info("crawl %s is still running: not loaded", key)
    return finished


@io_step
def load(settings: Settings, crawl_key: str) -> CrawlSummary:
    """Move a crawl's landed files into raw.* in one transaction and close its run; log what it stored."""
    landing = Landing(settings.landing_root)
    with open_warehouse(settings) as con:
        loaded = load_crawl(con, landing, crawl_key)
        summary = replace(pipeline.crawl.summarize(con, loaded.crawl_id), refused=loaded.refused)
        remove_loaded(con, landing, settings.landing_retention_days)
    log.info(
        "crawl %d (%s, %s): %d requested, %d profiles, %d posts; outcomes %s",
        summary.crawl_id,
        summary.crawl_key,
        summary.status,
        summary.accounts_requested,
        summary.profiles_written,
        summary.posts_written,
        summary.outcomes,
    )
    if summary.accounts_deferred:
        log.warning("crawl %d: %d account(s) deferred to the next night", summary.crawl_id, summary.accounts_deferred)
    log.info("stats of crawl %d (Scrapy's, or an import's counts): %s", summary.crawl_id, summary.stats)
    for name, why in summary.refused.items():
        log.warning("crawl %d: landed file %s refused: %s", summary.crawl_id, name, why)
    if summary.message:
        log.warning("crawl %d: %s", summary.crawl_id, summary.message)
    return summary


@io_step
def review_night(settings: Settings, crawl_key: str) -> nights.NightReview:
    """Read back what the night stored: its plan, outcomes by reason, validations and features."""
    with open_warehouse(settings, read_only=True) as con:
        return nights.review_night(con, crawl_key)


@pure_step
def judge_night(review: nights.NightReview, max_failure_share: float) -> str | None:
    """Say why the night failed (nothing read, too many accounts failed), or None."""
    return nights.judge_night(review, max_failure_share)


@io_step
def read_study_csv(path: Path, encoding: str | None = None) -> StudyCsv:
    """Read and check a CSV in the study's layout (nothing is stored yet)."""
    return study_csv.read_study_csv(path, encoding)


@io_step
def land_import(settings: Settings, path: Path, parsed: StudyCsv, as_of: date) -> LandedImport:
    """Land a parsed study CSV as one closed run in the landing area (`load` stores it)."""
    return land_study_csv(Landing(settings.landing_root), path, parsed, as_of)


@io_step
def discard_landed(settings: Settings, crawl_key: str) -> None:
    """Remove a run's landed files, so that no later load finds them."""
    Landing(settings.landing_root).remove_crawl(crawl_key)


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
def validate_crawl_rows(settings: Settings, crawl_id: int) -> Validation:
    """Read one crawl's raw rows in chunks (read-only), run the raw and volume suites (renders Data Docs)."""
    from transforms.validation import validate_crawl

    # Reads the warehouse and writes only files (Data Docs, GX's results): an I/O step, retried.
    with open_warehouse(settings, read_only=True) as con:
        con.execute(f"SET memory_limit = '{STREAMING_DUCKDB_MEMORY}'")
        counts = quality.crawl_counts(con, crawl_id)
        columns = {table: quality.table_columns(con, table) for table in quality.CRAWL_TABLES}
        (source,) = con.execute(CRAWL_SOURCE, [crawl_id]).fetchall()[0]
        expected = None
        if source in CRAWL_SOURCES:  # an import is a file of its own: no volume to compare
            expected = planned_volume(con, crawl_id, source)
        return validate_crawl(
            validator(settings),
            crawl_id,
            lambda table, key: quality.crawl_rows(con, table, crawl_id, key, quality.CHUNK_ROWS),
            counts,
            columns,
            expected,
        )


def planned_volume(con, crawl_id: int, source: str) -> dict:
    """What a crawl's plan leads to expect: a profile for every account it reached, and posts at
    the previous crawl's posts per profile (the night before only gives that ratio)."""
    from transforms.validation import Expected

    reached = quality.crawl_reached(con, crawl_id)
    profiles = Expected(reached, f"the {reached:,} planned accounts it reached")
    profiles_before, posts_before = quality.previous_crawl_counts(con, crawl_id, source) or (0, 0)
    posts = None
    if profiles_before and posts_before:
        per_profile = posts_before / profiles_before
        posts = Expected(
            reached * per_profile, f"{reached:,} accounts at the previous crawl's {per_profile:.1f} posts each"
        )
    return {"raw.profiles": profiles, "raw.posts": posts}


@io_step
def store_validation(settings: Settings, validation: Validation) -> None:
    """Record validation results and quarantined rows in the warehouse, in one transaction."""
    with open_warehouse(settings) as con:
        quality.store_validations(con, *validation.frames(utcnow()))


@pure_step
def require_table_checks(validation: Validation) -> None:
    """Fail the run if a table-level expectation (schema, volume) failed."""
    failed = validation.table_failures()
    if failed:
        raise ValidationFailed("table-level validation failed, features left as they were: " + "; ".join(failed))


# --- features -------------------------------------------------------------------------------


@io_step
def validate_feature_rows(settings: Settings, feature_date: date | None) -> FeatureRows:
    """Compute one date's features in DuckDB (default: the latest data), validate them in chunks, read-only."""
    from transforms.validation import validate_features

    # Like validate_crawl_rows: reads the warehouse, writes only Data Docs. Nothing is stored.
    with open_warehouse(settings, read_only=True) as con:
        con.execute(f"SET memory_limit = '{STREAMING_DUCKDB_MEMORY}'")
        day = feature_date_or_latest(con, feature_date)
        columns = quality.table_columns(con, "features.influencer_features")
        previous = quality.previous_feature_count(con, day)
        rows = FeatureStream(con, day, quality.CHUNK_ROWS, settings.max_observation_age_days)
        validation = validate_features(validator(settings), rows, columns, previous, day)
    return FeatureRows(day, validation, rows.fingerprint)


@io_step
def write_features(settings: Settings, features: FeatureRows) -> FeatureSummary:
    """Replace one date's features with the rows that passed validation, from SQL, in one transaction."""
    with open_warehouse(settings) as con:
        insert_features(
            con,
            features.feature_date,
            features.quarantined,
            features.fingerprint,
            STREAMING_DUCKDB_MEMORY,
            settings.max_observation_age_days,
        )
        return summarize_features(con, features.feature_date)


# --- cluster --------------------------------------------------------------------------------


@io_step
def read_features(settings: Settings, feature_date: date | None) -> tuple[ClusterableFeatures, date]:
    """Read the clusterable influencers of a feature date as arrays (default: the latest, refused if stale)."""
    with open_warehouse(settings, read_only=True) as con:
        con.execute(f"SET memory_limit = '{STREAMING_DUCKDB_MEMORY}'")  # its sort spills, not the arrays
        day = feature_date_to_cluster(con, feature_date)
        return load_clusterable(con, day), day


@io_step
def find_unchanged_snapshot(settings: Settings, fingerprint: str, clustering: ClusteringConfig) -> int | None:
    """The latest snapshot if it was built on the same data with the same clustering settings, else None."""
    with open_warehouse(settings, read_only=True) as con:
        return unchanged_snapshot(con, fingerprint, clustering.model_dump(mode="json"))


@io_step
def read_standing_frame(settings: Settings, feature_date: date) -> Standing | None:
    """Read the latest snapshot's persona frame and where each influencer of the date stood in it."""
    from models.frames import standing_of

    with open_warehouse(settings, read_only=True) as con:
        con.execute(f"SET memory_limit = '{STREAMING_DUCKDB_MEMORY}'")  # its join spills, not the arrays
        rows = read_standing(con, CLUSTERABLE, feature_date)
    return None if rows is None else standing_of(rows)


@pure_step
def fit(
    features: ClusterableFeatures,
    clustering: ClusteringConfig,
    feature_date: date,
    standing: Standing | None = None,
    rebase: bool = False,
    probe: Probe | None = None,
) -> SnapshotDraft:
    """Fit and score every candidate, then keep the standing persona frame or make one from the fit."""
    from models.recluster import no_probe, recluster  # scikit-learn: only commands that cluster need it

    log.info("fitting the candidates on %d influencers (features of %s)", len(features.er), feature_date)
    result = recluster(features, clustering, feature_date, probe or no_probe, standing, rebase)
    log.info(
        "%d influencers, %d candidates on the %s path; proposed %s; personas %s (%d)",
        result.n_influencers,
        len(result.candidates),
        result.parameters["path"],
        result.published,
        result.frame.why,
        result.n_clusters,
    )
    return result


@io_step
def write_snapshot(settings: Settings, draft: SnapshotDraft, force: bool = False) -> tuple[int, bool]:
    """Store the draft as the next snapshot, in one transaction; not if (unforced) the latest is the same."""
    with open_warehouse(settings) as con:
        con.execute(f"SET memory_limit = '{snapshot_duckdb_memory(draft.n_influencers)}'")
        return store_snapshot(con, draft, rows=CLUSTERABLE, unless_unchanged=not force)


def snapshot_duckdb_memory(influencers: int) -> str:
    """DuckDB's memory while it writes a snapshot: the assignments' primary-key index is held in
    memory (about 150 bytes an influencer at 10^7); the join and sorts spill past it."""
    return f"{max(256, 160 * influencers // 2**20)}MB"


@dataclass(frozen=True)
class SnapshotRead:
    cluster_table: pd.DataFrame
    changes: pd.DataFrame  # the CHANGES_SHOWN largest moves since the snapshot before, with why
    change_counts: dict[str, int]  # influencers per kind of change (changed, new, dropped, renamed): all of them


@io_step
def read_snapshot(settings: Settings, version: int) -> SnapshotRead:
    """Read a snapshot's cluster table, how many changed persona since the one before, and the largest moves."""
    with open_warehouse(settings, read_only=True) as con:
        counts = dict(con.execute(CHANGE_COUNTS).fetchall())
        return SnapshotRead(cluster_table(con, version), con.execute(CHANGES, [CHANGES_SHOWN]).df(), counts)


@io_step
def read_observation_ages(settings: Settings, version: int) -> pd.DataFrame:
    """Read how old a snapshot's numbers are, per persona and for the cohort."""
    from warehouse.ages import observation_ages

    with open_warehouse(settings, read_only=True) as con:
        return observation_ages(con, version)


# --- publish --------------------------------------------------------------------------------


@io_step
def publish(settings: Settings) -> Path:
    """Refresh the analysts' read-only copy of the warehouse."""
    return publish_copy(settings.warehouse, settings.analytics_path, lock_wait_seconds=settings.lock_wait_seconds)


# --- export ---------------------------------------------------------------------------------


@io_step
def export(
    settings: Settings,
    version: int | None,
    persona: str | None,
    fmt: str,
    output: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Export:
    """Write a snapshot's influencers (one persona's, if named) to a csv, parquet or xlsx file, atomically."""
    from renderers.workbook import write_workbook

    check_output(settings, output)
    with open_readable(settings) as con:
        return export_snapshot(con, version, persona, fmt, output, write_workbook, progress, views=view_sql())


# --- report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    version: int
    path: Path
    charts: list[Chart]  # in page order
    member_lists: dict[int, Path]  # persona id -> the CSV of its whole member list, beside the page
    data: ReportData  # what the page shows


@io_step
def report(
    settings: Settings, version: int | None, output: Path | None = None, progress: Callable[[str], None] | None = None
) -> Report:
    """Write a snapshot's report (persona cards, charts, member lists) as one HTML file and CSVs beside it."""
    from renderers.snapshot_page import draw, render  # matplotlib: imported only to draw
    from transforms.export import require_current_views
    from transforms.report import read_report_data, write_member_list
    from warehouse.snapshots import resolve_version

    say = progress or (lambda text: None)
    if output is not None:
        check_output(settings, output)
        check_output(settings, member_folder(output))  # the member lists go beside it
    with open_readable(settings) as con:
        require_current_views(con, view_sql())
        version = resolve_version(con, version)
        say("reading the personas and their best fits")
        data = read_report_data(con, version)
        default_place = output is None
        if default_place:
            output = settings.data_dir / "reports" / f"snapshot-{version}.html"
            output.parent.mkdir(parents=True, exist_ok=True)
        folder = member_folder(output)
        names = {int(p): f"persona-{int(p)}.csv" for p in data.profiles["persona_id"]}
        charts = draw(data, say)
        page = render(data, charts, {pid: f"{folder.name}/{name}" for pid, name in names.items()})
        # The member lists are written into a folder of their own first, then the page, under
        # temporary names: a failure (a full disk) leaves neither, and names the report.
        staged = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:12]}.tmp")

        def write_all(page_path: Path) -> None:
            staged.mkdir()
            for persona in data.profiles.to_dict(orient="records"):
                say(f"writing the member list of {persona['persona']}")
                write_member_list(con, data, persona, staged / names[int(persona["persona_id"])])
            Path(page_path).write_text(page, encoding="utf-8")

        try:
            write_atomically(output, write_all)
            replace_folder(staged, folder)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    if default_place:
        for old in reports_beyond(output.parent, settings.reports_kept):
            old.unlink(missing_ok=True)
            shutil.rmtree(member_folder(old), ignore_errors=True)
    return Report(version, output, charts, {pid: folder / name for pid, name in names.items()}, data)


DEFAULT_REPORT = re.compile(r"^snapshot-(\d+)\.html$")


def reports_beyond(folder: Path, kept: int) -> list[Path]:
    """The reports in the default folder older than its newest `kept` (by snapshot version)."""
    found = sorted(
        (int(match.group(1)), path) for path in folder.iterdir() if (match := DEFAULT_REPORT.match(path.name))
    )
    return [path for _, path in found[:-kept]]


def member_folder(report: Path) -> Path:
    """Where a report's member lists go: beside it, named after it (snapshot-3.html: snapshot-3-members/)."""
    return report.with_name(f"{report.stem}-members")


@io_step
def write_validation_summary(settings: Settings) -> Path:
    """Write the offline validation summary (data_docs/offline.html) from the quality tables, atomically."""
    from renderers.validation_page import render_validation_summary
    from warehouse.validation_summary import read_validation_summary

    with open_warehouse(settings, read_only=True) as con:
        page = render_validation_summary(*read_validation_summary(con))
    output = settings.data_docs_path / "offline.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(output, lambda path: Path(path).write_text(page, encoding="utf-8"))
    return output
