"""The jobs behind the CLI: each opens the warehouse, does one thing, and closes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from kic.errors import KicError
from kic.ingest import LoadResult, import_study_csv
from kic.settings import ClusteringSettings, Settings
from models.recluster import Clustering, recluster
from transforms.features import (
    FeatureSummary,
    derive_features,
    features_are_stale,
    latest_feature_date,
    load_clusterable,
)
from warehouse.publish import writing
from warehouse.snapshots import cluster_table, write_snapshot


@dataclass(frozen=True)
class ReclusterResult:
    version: int
    clustering: Clustering
    cluster_table: pd.DataFrame
    features: FeatureSummary | None  # set when features had to be derived first


def import_csv(settings: Settings, path: Path, as_of: date) -> LoadResult:
    with writing(settings) as con:
        return import_study_csv(con, path, as_of)


def features(settings: Settings, feature_date: date | None = None) -> FeatureSummary:
    with writing(settings) as con:
        return derive_features(con, feature_date)


def recluster_latest(settings: Settings, cfg: ClusteringSettings | None = None) -> ReclusterResult:
    """Recluster the latest features (derived first if raw data is newer) into a new snapshot."""
    cfg = cfg or settings.clustering
    with writing(settings) as con:
        derived = derive_features(con) if features_are_stale(con) else None
        feature_date = latest_feature_date(con)
        if feature_date is None:
            raise KicError("no data in the warehouse yet: run `kic run` or `kic import-csv` first")
        clustering = recluster(load_clusterable(con, feature_date), cfg, feature_date)
        version = write_snapshot(con, clustering)
        return ReclusterResult(version, clustering, cluster_table(con, version), derived)
