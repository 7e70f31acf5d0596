"""weekly-recluster: latest features → every candidate → a new snapshot → artifacts."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from flows.tasks import IO_TASK, PURE_TASK, publish
from kic.settings import ClusteringSettings, Settings, load_settings
from models.recluster import Clustering, recluster
from transforms.features import features_to_cluster
from warehouse.db import connect
from warehouse.snapshots import cluster_table, write_snapshot

CHANGES = """
SELECT username, previous_persona, current_persona, change FROM clusters.changes ORDER BY change, username
"""


def run_name() -> str:
    params = flow_run.parameters
    clustering = params.get("clustering") or {}
    publish = clustering.get("publish") if isinstance(clustering, dict) else getattr(clustering, "publish", None)
    return f"weekly-recluster-{params.get('feature_date') or 'latest'}-{publish or load_settings().clustering.publish}"


@task(name="load-features", **IO_TASK)
def load_features(settings: Settings, feature_date: dt.date | None) -> tuple[pd.DataFrame, dt.date]:
    """The clusterable influencers of a feature date (the latest; derived first if raw data is newer)."""
    with connect(settings.warehouse) as con:
        features, feature_date, _ = features_to_cluster(con, feature_date)
        return features, feature_date


@task(name="fit-candidates", **PURE_TASK)
def fit(features: pd.DataFrame, cfg: ClusteringSettings, feature_date: dt.date) -> Clustering:
    """Fit every candidate, score it, name the published clusters."""
    clustering = recluster(features, cfg, feature_date)
    get_run_logger().info(
        "%d influencers, %d candidates; published %s (%d clusters)",
        clustering.n_influencers, len(clustering.candidates), clustering.published, clustering.n_clusters,
    )
    return clustering


@task(name="write-snapshot", **IO_TASK)
def store_snapshot(settings: Settings, clustering: Clustering) -> tuple[int, pd.DataFrame, pd.DataFrame]:
    """Store the snapshot in one transaction; read back its cluster table and the changes."""
    with connect(settings.warehouse) as con:
        version = write_snapshot(con, clustering)
        return version, cluster_table(con, version), con.execute(CHANGES).df()


@task(name="weekly-artifacts", **PURE_TASK)
def report(version: int, clustering: Clustering, table: pd.DataFrame, changes: pd.DataFrame) -> None:
    """Cluster table, candidates and persona changes, as Prefect table artifacts."""
    create_table_artifact(
        key="weekly-clusters",
        table=[
            {"rank": int(r.rank), "persona": r.persona, "size": int(r.size),
             "mean_er": round(float(r.mean_er), 4), "mean_active_rate": round(float(r.mean_active_rate), 4)}
            for r in table.itertuples()
        ],
        description=f"Snapshot {version}: {clustering.published}, features of {clustering.feature_date}",
    )
    create_table_artifact(
        key="weekly-candidates",
        table=[
            {"candidate": r.candidate, "clusters": int(r.n_clusters),
             "silhouette": None if pd.isna(r.silhouette) else round(float(r.silhouette), 4),
             "published": bool(r.is_published)}
            for r in clustering.candidates.itertuples()
        ],
        description=f"Snapshot {version}: every candidate tried, with its mean silhouette",
    )
    create_table_artifact(
        key="weekly-persona-changes",
        table=changes.astype(object).where(changes.notna(), None).to_dict(orient="records")
        or [{"username": None, "previous_persona": None, "current_persona": None, "change": "none"}],
        description=f"Influencers whose persona changed since the previous snapshot ({len(changes)})",
    )


@flow(name="weekly-recluster", flow_run_name=run_name)
def weekly_recluster(clustering: ClusteringSettings | None = None, feature_date: dt.date | None = None) -> dict:
    """Recluster the latest features with every candidate and publish a new snapshot."""
    settings = load_settings()
    cfg = clustering or settings.clustering
    features, day = load_features(settings, feature_date)
    result = fit(features, cfg, day)
    version, table, changes = store_snapshot(settings, result)
    publish(settings)
    report(version, result, table, changes)
    return {"version": version, "published": result.published, "clusters": result.n_clusters,
            "changed": len(changes)}
