"""One reclustering, from clusterable features to the tables a snapshot stores (pure)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from models.candidates import (
    CandidateResult,
    candidate_grid,
    check_publishable,
    choose,
    elbow,
    evaluate,
    feasible,
    scale,
)
from models.config import ClusteringConfig
from models.personas import name_personas
from warehouse.errors import KicError

FEATURES = ["er", "active_rate"]
MIN_INFLUENCERS = 3


@dataclass(frozen=True)
class Clustering:
    """A snapshot's content before it is given a version."""

    feature_date: date
    data_fingerprint: str
    parameters: dict
    published: str
    candidates: pd.DataFrame  # one row per candidate
    elbow: pd.DataFrame  # k, sse
    assignments: pd.DataFrame  # username, cluster, persona, er, active_rate
    profiles: pd.DataFrame  # one row per cluster

    def snapshot_row(self) -> dict:
        """The clusters.snapshots row, without what the warehouse adds (version, time, code)."""
        return {
            "feature_date": self.feature_date,
            "n_influencers": self.n_influencers,
            "data_fingerprint": self.data_fingerprint,
            "parameters": self.parameters,
            "published_candidate": self.published,
            "n_clusters": self.n_clusters,
        }

    def tables(self) -> dict[str, pd.DataFrame]:
        """The rows of each clusters.* table under a snapshot, in insertion order."""
        return {
            "candidates": self.candidates,
            "kmeans_elbow": self.elbow,
            "assignments": self.assignments,
            "profiles": self.profiles,
        }

    @property
    def n_influencers(self) -> int:
        return len(self.assignments)

    @property
    def n_clusters(self) -> int:
        return len(self.profiles)


def fingerprint(features: pd.DataFrame) -> str:
    """sha256 of the clustered data: same influencers and values, same fingerprint."""
    data = features[["username", *FEATURES]].sort_values("username")
    return hashlib.sha256(data.to_csv(index=False, float_format="%.17g").encode()).hexdigest()


def fit_candidates(features: pd.DataFrame, cfg: ClusteringConfig) -> tuple[list[CandidateResult], dict[int, float]]:
    """Fit and score every feasible candidate, and the K-means elbow."""
    check_publishable(cfg)
    if len(features) < MIN_INFLUENCERS:
        raise KicError(f"only {len(features)} clusterable influencer(s): need at least {MIN_INFLUENCERS}")
    X = scale(features[FEATURES].to_numpy(dtype=np.float64), cfg.scaling)
    results = [evaluate(c, X, cfg) for c in candidate_grid(cfg) if feasible(c, len(X))]
    return results, elbow(X, cfg)


def cluster_profiles(features: pd.DataFrame, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-cluster profiles, clusters renumbered 1.. by size (largest first), and the new labels."""
    frame = features.assign(label=labels)
    stats = frame.groupby("label").agg(
        size=("er", "size"),
        mean_er=("er", "mean"),
        median_er=("er", "median"),
        mean_active_rate=("active_rate", "mean"),
        median_active_rate=("active_rate", "median"),
        median_follower=("follower", "median"),
    )
    stats = stats.sort_values(["size", "mean_er", "mean_active_rate"], ascending=False)
    renumber = {label: i + 1 for i, label in enumerate(stats.index)}
    stats.index = stats.index.map(renumber)
    stats = stats.rename_axis("cluster").reset_index()
    return name_personas(stats, features), np.array([renumber[label] for label in labels])


def recluster(features: pd.DataFrame, cfg: ClusteringConfig, feature_date: date) -> Clustering:
    """Fit all candidates on the clusterable features and build the snapshot's tables."""
    results, sse_by_k = fit_candidates(features, cfg)
    published = choose(results, cfg.publish)
    profiles, clusters = cluster_profiles(features, published.labels)
    persona = dict(zip(profiles["cluster"], profiles["persona"], strict=True))
    assignments = pd.DataFrame(
        {
            "username": features["username"].to_numpy(),
            "cluster": clusters,
            "persona": [persona[c] for c in clusters],
            "er": features["er"].to_numpy(),
            "active_rate": features["active_rate"].to_numpy(),
        }
    )
    candidates = pd.DataFrame(
        [
            {
                "candidate": r.name,
                "algorithm": r.algorithm,
                "k": r.k,
                "threshold": r.threshold,
                "n_clusters": r.n_clusters,
                "silhouette": r.silhouette,
                "sse": r.sse,
                "sizes": list(r.sizes),
                "is_published": r.name == published.name,
            }
            for r in results
        ]
    ).astype({"k": "Int64", "threshold": "Float64", "silhouette": "Float64"})
    return Clustering(
        feature_date=feature_date,
        data_fingerprint=fingerprint(features),
        parameters=cfg.model_dump(mode="json"),
        published=published.name,
        candidates=candidates,
        elbow=pd.DataFrame({"k": list(sse_by_k), "sse": list(sse_by_k.values())}),
        assignments=assignments,
        profiles=profiles,
    )
