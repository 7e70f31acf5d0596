"""The chains of steps that make a run: one definition for the CLI and the Prefect flows.

Each job takes `call`, which turns a step into what runs it: `direct` (the step itself)
for the CLI, a Prefect task of the same name for the flows (`flows.tasks.as_task`). So a
command and a flow run the same steps in the same order, with the same guarantees:
nothing reaches features without validation, and a read never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from models.config import ClusteringConfig
from pipeline import steps
from pipeline.crawl import CrawlRequest, CrawlSummary
from pipeline.settings import Settings
from readers.study_import import LandedImport
from transforms.features import FeatureSummary
from warehouse.errors import KicError
from warehouse.nights import NightReview
from warehouse.publish import PublishFailed

if TYPE_CHECKING:  # slow imports (scikit-learn, Great Expectations): only the steps that need them
    from models.recluster import SnapshotDraft
    from transforms.validation import Validation

Call = Callable[[Callable], Callable]


def direct(step: Callable) -> Callable:
    """Run a step as it is (the CLI)."""
    return step


@dataclass(frozen=True)
class DerivedFeatures:
    """What derive_features did: the features written, their validation, the crawls validated first."""

    summary: FeatureSummary
    validation: Validation
    crawl_validations: list[Validation]  # validations of crawls no run had validated yet


@dataclass(frozen=True)
class Refresh:
    crawl: CrawlSummary
    validation: Validation
    features: DerivedFeatures
    review: NightReview | None = None  # the night as stored: plan, outcomes by reason, validations

    @property
    def quarantined(self) -> int:
        return self.validation.quarantined + self.features.validation.quarantined


class NightFailed(KicError):
    """The night failed: nothing read, or too many accounts failed, or a step failed. What was
    crawled is kept; `refresh` is what the night still did (None if it stopped before features),
    `review` what it stored."""

    def __init__(self, message: str, refresh: Refresh | None, review: NightReview | None):
        super().__init__(message)
        self.refresh, self.review = refresh, review


@dataclass(frozen=True)
class Import:
    landed: LandedImport
    load: CrawlSummary
    validation: Validation
    features: DerivedFeatures


@dataclass(frozen=True)
class Recluster:
    version: int
    stored: SnapshotDraft | None  # what was stored; None when nothing new was
    cluster_table: pd.DataFrame
    changes: pd.DataFrame  # the largest moves since the snapshot before (steps.CHANGES_SHOWN), with why
    feature_date: date | None = None
    change_counts: dict[str, int] = field(default_factory=dict)  # every change, by kind

    @property
    def changed(self) -> int:
        """How many influencers changed persona (or came, or went) since the snapshot before."""
        return sum(self.change_counts.values())

    @property
    def unchanged(self) -> bool:
        """True when the run stored nothing: the latest snapshot has the same data and settings."""
        return self.stored is None

    def unchanged_message(self) -> str:
        return (
            f"nothing new: the features of {self.feature_date} and the clustering settings are those of "
            f"snapshot {self.version}; no snapshot stored (--force to recluster anyway)"
        )


def publish(settings: Settings, stored: str, *, call: Call = direct) -> None:
    """Publish the analysts' copy after a job stored `stored`; if that fails, say that it is stored."""
    try:
        call(steps.publish)(settings)
    except PublishFailed as exc:
        raise PublishFailed(
            f"{stored}: stored in the warehouse {settings.warehouse}, but {exc}", transient=exc.transient
        ) from None


def validate_crawl(settings: Settings, crawl_id: int, *, call: Call = direct, require: bool = True) -> Validation:
    """Validate one crawl's raw rows and record the result; with `require`, stop on a table-level failure."""
    validation = call(steps.validate_crawl_rows)(settings, crawl_id)
    call(steps.store_validation)(settings, validation)
    call(steps.write_validation_summary)(settings)  # before the checks: a failed crawl shows there too
    if require:
        call(steps.require_table_checks)(validation)
    return validation


def derive_features(settings: Settings, feature_date: date | None = None, *, call: Call = direct) -> DerivedFeatures:
    """Validate any crawl not validated yet, then derive, validate and store one date's features."""
    call(steps.upgrade_warehouse)(settings)
    # A crawl that fails here stays out of staging (its failure is on record); the rest go on.
    crawl_validations = [
        validate_crawl(settings, crawl_id, call=call, require=False)
        for crawl_id in call(steps.find_unvalidated_crawls)(settings)
    ]
    rows = call(steps.validate_feature_rows)(settings, feature_date)
    call(steps.store_validation)(settings, rows.validation)
    call(steps.write_validation_summary)(settings)
    call(steps.require_table_checks)(rows.validation)
    summary = call(steps.write_features)(settings, rows)
    return DerivedFeatures(summary, rows.validation, crawl_validations)


def refresh(
    settings: Settings,
    request: CrawlRequest,
    *,
    call: Call = direct,
    progress: Callable | None = None,
    shards: int = 1,
    run_shards: Callable[[str, list[str]], object] | None = None,
    on_review: Callable[[NightReview], object] | None = None,
) -> Refresh:
    """The nightly refresh: plan within the quota budget → crawl (landing files) → load →
    validate its rows → derive and validate features → publish → review and judge the night.

    `run_shards(crawl_key, shards)` runs the shards elsewhere (the nightly flow: one flow run
    per shard on the work pool) and returns once all have ended; by default the one shard
    runs here. Whatever happened once the crawl was opened, the night is read back from the
    warehouse and handed to `on_review` (the flow's artifacts); a failed night raises
    NightFailed naming its counts and top reasons, after what it crawled was kept.
    """
    # A crawl an earlier run left behind (killed before it was loaded) is loaded and closed first.
    for crawl_key in call(steps.find_unloaded_crawls)(settings):
        call(steps.load)(settings, crawl_key)
    plan = call(steps.plan_crawl)(settings, request, shards)
    opened = call(steps.open_crawl)(settings, request, plan)
    refreshed, failure = None, None
    try:
        log_file = None
        if run_shards is None:
            for shard in opened.shards:
                log_file = call(steps.crawl)(settings, request, opened.crawl_key, shard, progress).log_file
        else:
            run_shards(opened.crawl_key, opened.shards)
        refreshed = load_and_derive(settings, opened.crawl_key, call=call, log_file=log_file)
    except Exception as exc:  # reviewed below, then raised again
        failure = exc
    try:
        review = call(steps.review_night)(settings, opened.crawl_key)
    except Exception:
        if failure is not None:
            raise failure from None
        raise
    if on_review is not None:
        on_review(review)
    verdict = call(steps.judge_night)(review, settings.max_failure_share)
    if failure is not None:
        if verdict is None:
            raise failure
        raise NightFailed(f"{verdict}; {failure}", None, review) from failure
    refreshed = replace(refreshed, review=review)
    if verdict is not None:
        raise NightFailed(verdict, refreshed, review)
    return refreshed


def load_and_derive(settings: Settings, crawl_key: str, *, call: Call = direct, log_file=None) -> Refresh:
    """What follows a crawl: load what landed → validate its rows → derive and validate features → publish."""
    crawled = replace(call(steps.load)(settings, crawl_key), log_file=log_file)
    validation = validate_crawl(settings, crawled.crawl_id, call=call)
    features = derive_features(settings, crawled.as_of_date, call=call)
    publish(settings, f"crawl {crawled.crawl_id} and the features of {crawled.as_of_date}", call=call)
    return Refresh(crawled, validation, features)


def load(settings: Settings, crawl_keys: list[str], *, call: Call = direct) -> list[CrawlSummary]:
    """Load crawls that landed (e.g. run by hand with `scrapy crawl`), then publish; validation comes with features."""
    loaded = [call(steps.load)(settings, key) for key in crawl_keys]
    publish(settings, "crawl(s) " + ", ".join(str(summary.crawl_id) for summary in loaded), call=call)
    return loaded


def import_csv(
    settings: Settings, path: Path, as_of: date, encoding: str | None = None, *, call: Call = direct
) -> Import:
    """Import a study-layout CSV → validate its rows → derive and validate features → publish."""
    parsed = call(steps.read_study_csv)(path, encoding)
    landed = call(steps.land_import)(settings, path, parsed, as_of)
    try:
        loaded = call(steps.load)(settings, landed.crawl_key)
    except BaseException:
        # Stored whole or not at all, and only by this command: a later load must not find it.
        call(steps.discard_landed)(settings, landed.crawl_key)
        raise
    validation = validate_crawl(settings, loaded.crawl_id, call=call)
    features = derive_features(settings, as_of, call=call)
    publish(settings, f"import {loaded.crawl_id} and the features of {as_of}", call=call)
    return Import(landed, loaded, validation, features)


def features(settings: Settings, feature_date: date | None = None, *, call: Call = direct) -> DerivedFeatures:
    """Derive one date's features (validated) and publish."""
    derived = derive_features(settings, feature_date, call=call)
    publish(settings, f"the features of {derived.summary.feature_date}", call=call)
    return derived


def recluster(
    settings: Settings,
    clustering: ClusteringConfig | None = None,
    feature_date: date | None = None,
    *,
    force: bool = False,
    rebase: bool = False,
    call: Call = direct,
) -> Recluster:
    """The weekly recluster: read validated features → fit every candidate → keep the persona
    frame or make one (models/frames.py) → store a snapshot → publish.

    When the latest snapshot was built on the same data with the same settings, nothing is
    fitted or stored (unless `force` or `rebase`): the result says which snapshot stands. The
    copy is published either way, so that a run killed while publishing is made good by the next.
    """
    call(steps.upgrade_warehouse)(settings)
    clustering = clustering or settings.clustering
    force = force or rebase
    rows, day = call(steps.read_features)(settings, feature_date)
    if not force:
        standing = call(steps.find_unchanged_snapshot)(settings, rows.fingerprint, clustering)
        if standing is not None:
            publish(settings, f"snapshot {standing}", call=call)  # what an interrupted run did not
            read = call(steps.read_snapshot)(settings, standing)
            return Recluster(standing, None, read.cluster_table, read.changes.iloc[0:0], day)
    frame = None if rebase else call(steps.read_standing_frame)(settings, day)
    fitted = call(steps.fit)(rows, clustering, day, frame, rebase)
    version, stored = call(steps.write_snapshot)(settings, fitted, force)
    publish(settings, f"snapshot {version}", call=call)
    read = call(steps.read_snapshot)(settings, version)
    if not stored:  # another run stored the same while this one was fitting
        return Recluster(version, None, read.cluster_table, read.changes.iloc[0:0], day)
    return Recluster(version, fitted, read.cluster_table, read.changes, day, read.change_counts)


def watch(settings: Settings, usernames: list[str], added_from: str, *, call: Call = direct) -> int:
    """Watch accounts, then publish."""
    added = call(steps.watch)(settings, usernames, added_from)
    publish(settings, "the watchlist", call=call)
    return added


def unwatch(settings: Settings, usernames: list[str], *, call: Call = direct) -> int:
    """Stop watching accounts, then publish."""
    removed = call(steps.unwatch)(settings, usernames)
    publish(settings, "the watchlist", call=call)
    return removed
