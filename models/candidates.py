"""The candidate clusterings tried every week, the path they take (exact or scalable), and their scores."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.cluster import KMeans
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn_extra.cluster import KMedoids

from models.config import BEST_SILHOUETTE, ClusteringConfig
from models.hierarchical import Tree, build_tree
from models.scalable import ClaraKMedoids, SampledKMeans
from warehouse.errors import KicError

EXACT, SCALABLE = "exact", "scalable"
GIB = 2**30
BYTES_PER_INFLUENCER = 192  # features, their scaled copy, int16 labels per candidate, profiles (measured ~130 at 10M)


@dataclass(frozen=True)
class Candidate:
    name: str
    algorithm: str  # kmeans | kmedoids | hierarchical
    estimator: BaseEstimator | None  # None for hierarchical cuts: they share one tree
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
    sse: float
    sizes: tuple[int, ...]  # largest first
    method: str  # how it was fitted, e.g. "exact", "scalable: CLARA (5 samples of 4000), refined"
    tree: Tree | None = None  # hierarchical cuts: the tree they were cut from (for its dendrogram)


def threshold_label(t: float) -> str:
    return f"{t:g}"


def resolve_path(cfg: ClusteringConfig, n: int) -> str:
    """exact or scalable, as the strategy says for a cohort of n influencers."""
    if cfg.strategy == "auto":
        return EXACT if n <= cfg.exact_max_influencers else SCALABLE
    return cfg.strategy


def memory_needed(cfg: ClusteringConfig, n: int, path: str) -> tuple[float, str]:
    """Bytes the path needs at most for n influencers, and what takes the most."""
    per_influencer = BYTES_PER_INFLUENCER * n
    if path == EXACT:
        # PAM keeps an n x n matrix; the linkage a condensed one (overwritten in place, not copied).
        needs = {
            "PAM's distance matrix": 8.0 * n * n if cfg.kmedoids_k else 0.0,
            "complete linkage's distance matrix": 4.0 * n * (n - 1),
        }
    else:
        m = min(n, cfg.max_micro_clusters)
        s = min(n, cfg.kmedoids_sample_size)
        needs = {
            "the micro-cluster distance matrix": 4.0 * m * (m - 1),
            "a CLARA sample's distance matrix": 8.0 * s * s * 2,
        }
    biggest = max(needs, key=needs.get)
    return per_influencer + needs[biggest], biggest


def check_fits(cfg: ClusteringConfig, n: int, path: str) -> None:
    """Refuse, before any fitting, a cohort its path cannot cluster, or not within the memory allowed."""
    hierarchical = cfg.hierarchical_thresholds or cfg.hierarchical_k
    if path == SCALABLE and hierarchical and cfg.hierarchical_linkage != "complete" and n > cfg.max_micro_clusters:
        raise KicError(
            f"{cfg.hierarchical_linkage} linkage of {n:,} influencers: beyond clustering.max_micro_clusters = "
            f"{cfg.max_micro_clusters:,} only complete linkage has a scalable summary; use complete linkage, "
            "clustering.strategy = 'exact', or a larger max_micro_clusters"
        )
    needed, why = memory_needed(cfg, n, path)
    if needed > cfg.memory_limit_gib * GIB:
        hint = (
            "use clustering.strategy = 'auto' or 'scalable' (or a lower clustering.exact_max_influencers)"
            if path == EXACT
            else "lower clustering.max_micro_clusters or clustering.kmedoids_sample_size"
        )
        raise KicError(
            f"clustering {n:,} influencers on the {path} path needs about {needed / GIB:,.1f} GiB "
            f"({why}), more than clustering.memory_limit_gib = {cfg.memory_limit_gib:g}: {hint}, "
            "or raise the limit"
        )


def candidate_grid(cfg: ClusteringConfig, path: str = EXACT) -> list[Candidate]:
    """Every candidate the settings ask for, K-means and K-medoids with an unfitted, seeded estimator."""
    if path == EXACT:
        kmeans = [KMeans(n_clusters=k, n_init=cfg.kmeans_n_init, random_state=cfg.seed) for k in cfg.kmeans_k]
        kmedoids = [
            KMedoids(n_clusters=k, metric="euclidean", method=cfg.kmedoids_method, init="build", random_state=cfg.seed)
            for k in cfg.kmedoids_k
        ]
    else:
        kmeans = [kmeans_estimator(cfg, path, k) for k in cfg.kmeans_k]
        kmedoids = [
            ClaraKMedoids(
                n_clusters=k,
                sample_size=cfg.kmedoids_sample_size,
                n_samples=cfg.kmedoids_samples,
                random_state=cfg.seed,
            )
            for k in cfg.kmedoids_k
        ]
    grid = [Candidate(f"kmeans-k{e.n_clusters}", "kmeans", e, k=e.n_clusters) for e in kmeans]
    grid += [Candidate(f"kmedoids-k{e.n_clusters}", "kmedoids", e, k=e.n_clusters) for e in kmedoids]
    method = cfg.hierarchical_linkage
    grid += [
        Candidate(f"hierarchical-{method}-t{threshold_label(t)}", "hierarchical", None, threshold=t)
        for t in cfg.hierarchical_thresholds
    ]
    grid += [Candidate(f"hierarchical-{method}-k{k}", "hierarchical", None, k=k) for k in cfg.hierarchical_k]
    return grid


def kmeans_estimator(cfg: ClusteringConfig, path: str, k: int) -> BaseEstimator:
    if path == EXACT:
        return KMeans(n_clusters=k, n_init=cfg.kmeans_n_init, random_state=cfg.seed)
    return SampledKMeans(
        n_clusters=k, sample_size=cfg.kmeans_sample_size, n_init=cfg.kmeans_n_init, random_state=cfg.seed
    )


def method_of(candidate: Candidate, cfg: ClusteringConfig, path: str, tree: Tree | None = None) -> str:
    """How a candidate is fitted on this path, in words stored with the snapshot."""
    if path == EXACT:
        return EXACT
    if candidate.algorithm == "kmeans":
        return f"scalable: {cfg.kmeans_n_init} restarts on a sample of {cfg.kmeans_sample_size}, then all points"
    if candidate.algorithm == "kmedoids":
        return (
            f"scalable: CLARA, FasterPAM on {cfg.kmedoids_samples} samples of {cfg.kmedoids_sample_size}, "
            "refined on all points"
        )
    if tree is not None and tree.max_cell_diameter > 0:
        return f"scalable: {tree.leaves} micro-clusters of diameter <= {tree.max_cell_diameter:.4g}"
    return f"scalable: exact (at most {cfg.max_micro_clusters} points)"


def scale(X: np.ndarray, how: str) -> np.ndarray:
    """The space clustering happens in: the study's unscaled features by default."""
    if how == "none":
        return X
    scaler = {"standard": StandardScaler(), "minmax": MinMaxScaler()}[how]
    return scaler.fit_transform(X)


def within_cluster_sse(X: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances to each cluster's mean (K-means' inertia, for any 0-based labels)."""
    counts = np.bincount(labels)  # counted by label, not sorted: the labels are small integers
    present = counts > 0
    counts = counts[present].astype(np.float64)
    total = 0.0
    for axis in range(X.shape[1]):
        sums = np.bincount(labels, X[:, axis])[present]
        total += float((X[:, axis] ** 2).sum() - (sums**2 / counts).sum())
    return max(total, 0.0)


def compact(labels: np.ndarray) -> np.ndarray:
    """0-based labels in the smallest integer type that holds them: 12 candidates x 10^7 influencers
    take 240 MB as int16, 960 MB as int64."""
    labels = np.asarray(labels)
    kind = np.int16 if labels.max(initial=0) < np.iinfo(np.int16).max else np.int32
    return labels.astype(kind, copy=False)


def result(candidate: Candidate, X: np.ndarray, labels: np.ndarray, method: str) -> CandidateResult:
    labels = compact(labels)
    sizes = np.bincount(labels - labels.min())
    sizes = sizes[sizes > 0]
    return CandidateResult(
        name=candidate.name,
        algorithm=candidate.algorithm,
        k=candidate.k,
        threshold=candidate.threshold,
        labels=labels,
        n_clusters=len(sizes),
        sse=within_cluster_sse(X, labels),
        sizes=tuple(sorted((int(s) for s in sizes), reverse=True)),
        method=method,
    )


def fit_estimator(candidate: Candidate, X: np.ndarray, cfg: ClusteringConfig, path: str) -> CandidateResult:
    """Fit a K-means or K-medoids candidate on X (already scaled)."""
    estimator = clone(candidate.estimator).fit(X)
    return result(candidate, X, estimator.labels_, method_of(candidate, cfg, path))


def fit_hierarchical(
    candidates: list[Candidate], X: np.ndarray, cfg: ClusteringConfig, path: str
) -> list[CandidateResult]:
    """Every hierarchical cut from one tree (built once: the costly part)."""
    if not candidates:
        return []
    max_points = None if path == EXACT else cfg.max_micro_clusters
    tree = build_tree(X, cfg.hierarchical_linkage, max_points)
    return [
        replace(
            result(c, X, tree.cut(c.threshold, c.k if c.threshold is None else None), method_of(c, cfg, path, tree)),
            tree=tree,
        )
        for c in candidates
    ]


def feasible(candidate: Candidate, n_samples: int) -> bool:
    return candidate.k is None or candidate.k < n_samples


def check_publishable(cfg: ClusteringConfig) -> None:
    """Fail before any fitting if `publish` names no candidate of the grid."""
    names = [c.name for c in candidate_grid(cfg)]
    if cfg.publish != BEST_SILHOUETTE and cfg.publish not in names:
        raise KicError(
            f"clustering.publish = {cfg.publish!r} is none of the candidates "
            f"({', '.join(names)}) nor {BEST_SILHOUETTE!r}"
        )


def choose(
    results: list[CandidateResult],
    silhouettes: dict[str, float | None],
    publish: str,
    personas: tuple[int, int] = (1, 2**31),
) -> tuple[CandidateResult, str]:
    """The candidate to publish, and why: the one named in the settings, or the best mean
    silhouette; either way giving a number of personas inside `personas` (min, max) if any can."""
    low, high = personas
    inside = [r for r in results if low <= r.n_clusters <= high]
    span = f"{low}–{high} personas (clustering.min_personas / max_personas)"
    if publish == BEST_SILHOUETTE:
        scored = [r for r in (inside or results) if silhouettes.get(r.name) is not None]
        if not scored:
            raise KicError("no candidate has a silhouette to choose by (too few influencers?)")
        best = max(scored, key=lambda r: silhouettes[r.name])
        among = f"the candidates giving {span}" if inside else f"all candidates (none gives {span})"
        return best, f"best mean silhouette among {among}"
    named = next((r for r in results if r.name == publish), None)
    if named is None:
        raise KicError(f"candidate {publish!r} could not be fitted on {len(results[0].labels)} influencers")
    if low <= named.n_clusters <= high:
        return named, "as set (clustering.publish)"
    same = [r for r in inside if r.algorithm == named.algorithm]
    pool = same or inside
    if not pool:
        return named, f"as set; it gives {named.n_clusters} personas and no candidate gives {span}"
    pick = min(pool, key=lambda r: (abs(r.n_clusters - named.n_clusters), -(silhouettes.get(r.name) or -1.0)))
    nearest = "the same algorithm's nearest" if same else "the nearest"
    return pick, (
        f"{publish} gives {named.n_clusters} personas, outside {span}: {pick.name} ({pick.n_clusters}) is "
        f"{nearest} inside"
    )
