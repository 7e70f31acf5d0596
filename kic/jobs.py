"""The jobs behind the CLI: each opens the warehouse, does one thing, and closes it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from kic.ingest import LoadResult, import_study_csv
from kic.settings import ClusteringSettings, Settings
from models.recluster import Clustering, recluster
from transforms.features import FeatureSummary, derive_features, features_to_cluster
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
        features, feature_date, derived = features_to_cluster(con)
        clustering = recluster(features, cfg, feature_date)
        version = write_snapshot(con, clustering)
        return ReclusterResult(version, clustering, cluster_table(con, version), derived)
