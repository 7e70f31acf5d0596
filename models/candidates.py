"""The candidate clusterings tried every week, and how each is scored."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn_extra.cluster import KMedoids

from models.config import BEST_SILHOUETTE, ClusteringConfig
from models.hierarchical import HierarchicalClustering
from warehouse.errors import KicError


@dataclass(frozen=True)
class Candidate:
    name: str
    algorithm: str  # kmeans | kmedoids | hierarchical
    estimator: BaseEstimator
    k: int | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class CandidateResult:
    name: str
    algorithm: str
    k: int | None
    threshold: float | None
    labels: np.ndarray  # 0-based cluster per influencer, in input order
    n_clusters: int
    silhouette: float | None
    sse: float
    sizes: tuple[int, ...]  # largest first


def threshold_label(t: float) -> str:
    return f"{t:g}"


def candidate_grid(cfg: ClusteringConfig) -> list[Candidate]:
    """Every candidate the settings ask for, each with an unfitted, seeded estimator."""
    grid = [
        Candidate(
            f"kmeans-k{k}",
            "kmeans",
            KMeans(n_clusters=k, n_init=cfg.kmeans_n_init, random_state=cfg.seed),
            k=k,
        )
        for k in cfg.kmeans_k
    ]
    grid += [
        Candidate(
            f"kmedoids-k{k}",
            "kmedoids",
            KMedoids(n_clusters=k, metric="euclidean", method=cfg.kmedoids_method, init="build", random_state=cfg.seed),
            k=k,
        )
        for k in cfg.kmedoids_k
    ]
    method = cfg.hierarchical_linkage
    grid += [
        Candidate(
            f"hierarchical-{method}-t{threshold_label(t)}",
            "hierarchical",
            HierarchicalClustering(method=method, distance_threshold=t),
            threshold=t,
        )
        for t in cfg.hierarchical_thresholds
    ]
    grid += [
        Candidate(
            f"hierarchical-{method}-k{k}",
            "hierarchical",
            HierarchicalClustering(method=method, distance_threshold=None, n_clusters=k),
            k=k,
        )
        for k in cfg.hierarchical_k
    ]
    return grid


def scale(X: np.ndarray, how: str) -> np.ndarray:
    """The space clustering happens in: the study's unscaled features by default."""
    if how == "none":
        return X
    scaler = {"standard": StandardScaler(), "minmax": MinMaxScaler()}[how]
    return scaler.fit_transform(X)


def within_cluster_sse(X: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances to each cluster's mean (K-means' inertia, for any labels)."""
    total = 0.0
    for cluster in np.unique(labels):
        members = X[labels == cluster]
        total += float(((members - members.mean(axis=0)) ** 2).sum())
    return total


def mean_silhouette(X: np.ndarray, labels: np.ndarray, sample_size: int, seed: int) -> float | None:
    """Exact mean silhouette up to `sample_size` rows, a seeded sample of that size beyond."""
    n_clusters = len(np.unique(labels))
    if not 2 <= n_clusters <= len(X) - 1:
        return None
    sample = sample_size if len(X) > sample_size else None
    return float(silhouette_score(X, labels, sample_size=sample, random_state=seed))


def evaluate(candidate: Candidate, X: np.ndarray, cfg: ClusteringConfig) -> CandidateResult:
    """Fit one candidate on X (already scaled) and score it."""
    estimator = clone(candidate.estimator).fit(X)
    labels = np.asarray(estimator.labels_, dtype=np.int64)
    sizes = np.bincount(labels)
    sizes = sizes[sizes > 0]
    return CandidateResult(
        name=candidate.name,
        algorithm=candidate.algorithm,
        k=candidate.k,
        threshold=candidate.threshold,
        labels=labels,
        n_clusters=len(sizes),
        silhouette=mean_silhouette(X, labels, cfg.silhouette_sample_size, cfg.seed),
        sse=within_cluster_sse(X, labels),
        sizes=tuple(sorted((int(s) for s in sizes), reverse=True)),
    )


def feasible(candidate: Candidate, n_samples: int) -> bool:
    return candidate.k is None or candidate.k < n_samples


def elbow(X: np.ndarray, cfg: ClusteringConfig) -> dict[int, float]:
    """K-means SSE (inertia) for each elbow K."""
    return {
        k: float(KMeans(n_clusters=k, n_init=cfg.kmeans_n_init, random_state=cfg.seed).fit(X).inertia_)
        for k in cfg.elbow_k
        if k <= len(X)
    }


def check_publishable(cfg: ClusteringConfig) -> None:
    """Fail before any fitting if `publish` names no candidate of the grid."""
    names = [c.name for c in candidate_grid(cfg)]
    if cfg.publish != BEST_SILHOUETTE and cfg.publish not in names:
        raise KicError(
            f"clustering.publish = {cfg.publish!r} is none of the candidates "
            f"({', '.join(names)}) nor {BEST_SILHOUETTE!r}"
        )


def choose(results: list[CandidateResult], publish: str) -> CandidateResult:
    """The candidate to publish: one named in the settings, or the best mean silhouette."""
    if publish == BEST_SILHOUETTE:
        scored = [r for r in results if r.silhouette is not None]
        if not scored:
            raise KicError("no candidate has a silhouette to choose by (too few influencers?)")
        return max(scored, key=lambda r: r.silhouette)
    for result in results:
        if result.name == publish:
            return result
    raise KicError(f"candidate {publish!r} could not be fitted on {len(results[0].labels)} influencers")
