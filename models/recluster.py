"""One reclustering, from clusterable features to the tables a snapshot stores (pure).

Features come in as numeric arrays (er, active_rate, follower), one entry per influencer
in the warehouse's order; influencers are written back by that order, never carried through
Python one by one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd

from models.candidates import (
    CandidateResult,
    candidate_grid,
    check_fits,
    check_publishable,
    choose,
    feasible,
    fit_estimator,
    fit_hierarchical,
    kmeans_estimator,
    resolve_path,
    scale,
    within_cluster_sse,
)
from models.config import ClusteringConfig
from models.hierarchical import Tree, top_merges
from models.personas import name_personas
from models.silhouette import silhouettes
from warehouse.errors import KicError

MIN_INFLUENCERS = 3
Probe = Callable[[str], contextlib.AbstractContextManager]


class Features(Protocol):
    """The clusterable influencers of one feature date, in a fixed order."""

    er: np.ndarray
    active_rate: np.ndarray
    follower: np.ndarray
    fingerprint: str  # identifies the data: same influencers and values, same fingerprint


def no_probe(part: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Clustering:
    """A snapshot's content before it is given a version."""

    feature_date: date
    data_fingerprint: str
    parameters: dict
    published: str
    candidates: pd.DataFrame  # one row per candidate
    elbow: pd.DataFrame  # k, sse
    clusters: np.ndarray  # published cluster (numbered 1.. by size) of each influencer, in input order
    profiles: pd.DataFrame  # one row per cluster
    dendrogram: pd.DataFrame  # the hierarchical tree's top merges (models.hierarchical.top_merges)

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
        """The rows of the small clusters.* tables under a snapshot, in insertion order."""
        return {
            "candidates": self.candidates,
            "kmeans_elbow": self.elbow,
            "profiles": self.profiles,
            "dendrogram": self.dendrogram,
        }

    def cluster_per_row(self) -> pd.DataFrame:
        """row_index (the influencer's place in the input order) and its cluster: numbers only."""
        return pd.DataFrame({"row_index": np.arange(len(self.clusters), dtype=np.int64), "cluster": self.clusters})

    @property
    def n_influencers(self) -> int:
        return len(self.clusters)

    @property
    def n_clusters(self) -> int:
        return len(self.profiles)


def fit_candidates(
    X: np.ndarray, cfg: ClusteringConfig, probe: Probe = no_probe
) -> tuple[list[CandidateResult], dict[int, float], str]:
    """Fit every feasible candidate on X (already scaled) and the K-means elbow; return the path taken."""
    check_publishable(cfg)
    if X is None or len(X) < MIN_INFLUENCERS:
        raise KicError(f"only {0 if X is None else len(X)} clusterable influencer(s): need at least {MIN_INFLUENCERS}")
    path = resolve_path(cfg, len(X))
    check_fits(cfg, len(X), path)
    grid = [c for c in candidate_grid(cfg, path) if feasible(c, len(X))]
    results = []
    for family in ("kmeans", "kmedoids"):
        with probe(family):
            results += [fit_estimator(c, X, cfg, path) for c in grid if c.algorithm == family]
    with probe("hierarchical"):
        results += fit_hierarchical([c for c in grid if c.algorithm == "hierarchical"], X, cfg, path)
    with probe("elbow"):
        sse_by_k = {r.k: r.sse for r in results if r.algorithm == "kmeans"}
        for k in cfg.elbow_k:
            if k not in sse_by_k and k <= len(X):
                sse_by_k[k] = within_cluster_sse(X, kmeans_estimator(cfg, path, k).fit(X).labels_)
    elbow = {k: sse_by_k[k] for k in cfg.elbow_k if k in sse_by_k}
    return results, elbow, path


def cluster_profiles(features: Features, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-cluster profiles, clusters renumbered 1.. by size (largest first), and the new labels."""
    present, codes = np.unique(labels, return_inverse=True)
    size = np.bincount(codes)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(size)[:-1]

    def medians(values: np.ndarray) -> np.ndarray:
        return np.array([np.median(group) for group in np.split(values[order], bounds)])

    stats = pd.DataFrame(
        {
            "size": size,
            "mean_er": np.bincount(codes, features.er) / size,
            "median_er": medians(features.er),
            "mean_active_rate": np.bincount(codes, features.active_rate) / size,
            "median_active_rate": medians(features.active_rate),
            "median_follower": medians(np.asarray(features.follower, dtype=np.float64)),
        }
    )
    ranked = stats.sort_values(["size", "mean_er", "mean_active_rate"], ascending=False).index.to_numpy()
    renumber = np.empty(len(present), dtype=np.int64)
    renumber[ranked] = np.arange(1, len(present) + 1)
    stats = stats.loc[ranked].reset_index(drop=True)
    stats.insert(0, "cluster", np.arange(1, len(present) + 1))
    cohort = pd.DataFrame({"er": features.er, "active_rate": features.active_rate})
    return name_personas(stats, cohort), renumber[codes]


def recluster(features: Features, cfg: ClusteringConfig, feature_date: date, probe: Probe = no_probe) -> Clustering:
    """Fit all candidates on the clusterable features, score them, build the snapshot's tables."""
    X = scale(np.column_stack([features.er, features.active_rate]).astype(np.float64), cfg.scaling)
    results, sse_by_k, path = fit_candidates(X, cfg, probe)
    with probe("silhouettes"):
        scores = silhouettes(X, [r.labels for r in results], cfg.silhouette_sample_size, cfg.seed)
    by_name = {r.name: s for r, s in zip(results, scores, strict=True)}
    published, why = choose(
        results, {name: s.mean for name, s in by_name.items()}, cfg.publish, (cfg.min_personas, cfg.max_personas)
    )
    with probe("profiles"):
        profiles, clusters = cluster_profiles(features, published.labels)
    candidates = pd.DataFrame(
        [
            {
                "candidate": r.name,
                "algorithm": r.algorithm,
                "k": r.k,
                "threshold": r.threshold,
                "n_clusters": r.n_clusters,
                "silhouette": by_name[r.name].mean,
                "silhouette_se": by_name[r.name].standard_error,
                "silhouette_sample_size": by_name[r.name].sample_size,
                "sse": r.sse,
                "sizes": list(r.sizes),
                "is_published": r.name == published.name,
                "method": r.method,
            }
            for r in results
        ]
    ).astype({"k": "Int64", "threshold": "Float64", "silhouette": "Float64", "silhouette_se": "Float64"})
    return Clustering(
        feature_date=feature_date,
        data_fingerprint=features.fingerprint,
        parameters={**cfg.model_dump(mode="json"), "path": path, "influencers": len(X), "published_because": why},
        published=published.name,
        candidates=candidates,
        elbow=pd.DataFrame({"k": list(sse_by_k), "sse": list(sse_by_k.values())}),
        clusters=clusters,
        profiles=profiles,
        dendrogram=dendrogram_of(results),
    )


def dendrogram_of(results: list) -> pd.DataFrame:
    """Top merges of the hierarchical candidates' one tree; no rows when none was fitted."""
    tree = next((r.tree for r in results if r.tree is not None), None)
    if tree is None:
        return top_merges(Tree(np.empty((0, 4)), np.zeros(1, dtype=np.int64), 0.0))
    return top_merges(tree)
