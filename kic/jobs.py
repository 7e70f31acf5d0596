"""The jobs behind the CLI: each opens the warehouse, does one thing, and closes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from kic.errors import KicError
from kic.ingest import LoadResult, import_study_csv, write_synthetic_crawl
from kic.settings import ClusteringSettings, Settings
from kic.synthetic import Population
from models.recluster import Clustering, recluster
from transforms.features import (
    FeatureSummary,
    derive_features,
    features_are_stale,
    latest_feature_date,
    load_clusterable,
)
from warehouse.db import connect
from warehouse.publish import publish_copy
from warehouse.snapshots import cluster_table, write_snapshot


@dataclass(frozen=True)
class ReclusterResult:
    version: int
    clustering: Clustering
    cluster_table: pd.DataFrame
    features: FeatureSummary | None  # set when features had to be derived first


def publish(settings: Settings) -> Path:
    """Refresh the analysts' copy after a successful write."""
    return publish_copy(settings.warehouse, settings.analytics_path)


def import_csv(settings: Settings, path: Path, as_of: date) -> LoadResult:
    with connect(settings.warehouse) as con:
        result = import_study_csv(con, path, as_of)
    publish(settings)
    return result


def crawl_synthetic(settings: Settings, on: date) -> LoadResult:
    population = Population(settings.synthetic.influencers, settings.synthetic.seed)
    with connect(settings.warehouse) as con:
        result = write_synthetic_crawl(con, population, on)
    publish(settings)
    return result


def features(settings: Settings, feature_date: date | None = None) -> FeatureSummary:
    with connect(settings.warehouse) as con:
        summary = derive_features(con, feature_date)
    publish(settings)
    return summary


def recluster_latest(settings: Settings, cfg: ClusteringSettings | None = None) -> ReclusterResult:
    """Recluster the latest features (derived first if raw data is newer) into a new snapshot."""
    cfg = cfg or settings.clustering
    with connect(settings.warehouse) as con:
        derived = derive_features(con) if features_are_stale(con) else None
        feature_date = latest_feature_date(con)
        if feature_date is None:
            raise KicError("no data in the warehouse yet: run `kic run` or `kic import-csv` first")
        clustering = recluster(load_clusterable(con, feature_date), cfg, feature_date)
        version = write_snapshot(con, clustering)
        result = ReclusterResult(version, clustering, cluster_table(con, version), derived)
    publish(settings)
    return result
