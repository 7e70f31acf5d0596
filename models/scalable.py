"""Clusterers for cohorts too large for the exact algorithms (scikit-learn estimator API).

Each keeps memory linear in the cohort (plus a fixed sample) and time near-linear:

- SampledKMeans: K-means with `n_init` restarts on a seeded lightweight coreset (Bachem,
  Lucic & Krause, KDD 2018: points drawn half uniformly, half in proportion to their squared
  distance to the mean, weighted back), then Lloyd's algorithm on every point from the best
  centres. The coreset keeps the outliers that drive K-means' cost; its guarantee: the
  centres' cost is within (1 + eps) of the best on the coreset, eps falling with its size.
- ClaraKMedoids: CLARA (Kaufman & Rousseeuw) with FasterPAM (Schubert & Rousseeuw, the
  `kmedoids` package) on each seeded sample, keeping the medoids that cost least on every
  point, then refined on every point: each medoid is swapped for the best of the points
  nearest it while that lowers its cluster's total distance.
"""

from __future__ import annotations

import kmedoids
import numpy as np
from scipy.spatial.distance import cdist, pdist, squareform
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array

CHUNK_ROWS = 100_000  # rows per block of point-to-medoid distances


def lightweight_coreset(X: np.ndarray, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of a lightweight coreset of X (sampled with replacement)."""
    squared = ((X - X.mean(axis=0)) ** 2).sum(axis=1)
    total = squared.sum()
    q = 0.5 / len(X) + (0.5 * squared / total if total > 0 else 0.5 / len(X))
    picked = rng.choice(len(X), size=size, replace=True, p=q / q.sum())
    return picked, 1.0 / (size * q[picked])


class SampledKMeans(ClusterMixin, BaseEstimator):
    """K-means whose restarts run on a seeded lightweight coreset; one run of Lloyd's on all points.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters.
    sample_size : int, default=20_000
        Points in the coreset the restarts run on; inputs no larger are clustered whole.
    n_init : int, default=10
        K-means restarts on the coreset; the best one's centres start the run on every point.
    random_state : int, RandomState instance or None, default=None
        Seeds the coreset and the restarts.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : ndarray of shape (n_samples,)
        The cluster of each point (scikit-learn's integer type).
    inertia_ : float
        Sum of squared distances of the points to their centre.
    n_iter_ : int
        Lloyd iterations of the run on every point.
    n_features_in_ : int

    Notes
    -----
    The coreset is Bachem, Lucic & Krause's lightweight coreset (KDD 2018), weighted back, so
    the restarts' cost estimates the cost on every point; memory is linear in the input.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((50, 2)), np.full((50, 2), 10.0)]
    >>> SampledKMeans(n_clusters=2, sample_size=20, random_state=0).fit(X).cluster_centers_.round().tolist()
    [[0.0, 0.0], [10.0, 10.0]]
    """

    def __init__(self, n_clusters=8, sample_size=20_000, n_init=10, random_state=None):
        self.n_clusters = n_clusters
        self.sample_size = sample_size
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X, y=None):
        X = check_array(X, dtype=np.float64)
        rng = check_random_state(self.random_state)
        self.n_features_in_ = X.shape[1]
        seed = rng.randint(np.iinfo(np.int32).max)
        if len(X) <= self.sample_size:
            started = KMeans(self.n_clusters, n_init=self.n_init, random_state=seed).fit(X)
        else:
            picked, weights = lightweight_coreset(X, self.sample_size, rng)
            started = KMeans(self.n_clusters, n_init=self.n_init, random_state=seed).fit(
                X[picked], sample_weight=weights
            )
        full = KMeans(self.n_clusters, init=started.cluster_centers_, n_init=1, random_state=seed).fit(X)
        self.cluster_centers_ = full.cluster_centers_
        self.labels_ = full.labels_
        self.inertia_ = float(full.inertia_)
        self.n_iter_ = full.n_iter_
        return self


def nearest(X: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, float]:
    """The nearest centre of every point, and the total distance to it (in blocks of rows)."""
    labels = np.empty(len(X), dtype=np.int32)
    total = 0.0
    for start in range(0, len(X), CHUNK_ROWS):
        distances = cdist(X[start : start + CHUNK_ROWS], centres)
        labels[start : start + CHUNK_ROWS] = distances.argmin(axis=1)
        total += float(distances.min(axis=1).sum())
    return labels, total


class ClaraKMedoids(ClusterMixin, BaseEstimator):
    """K-medoids (Euclidean, sum of distances) by CLARA with FasterPAM, refined on all points.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of medoids.
    sample_size : int, default=4_000
        Points in each CLARA sample (its distance matrix is sample_size squared).
    n_samples : int, default=5
        CLARA samples drawn; the best medoids so far join every later sample.
    refine_candidates : int, default=100
        Points nearest each medoid tried as its replacement in a refining round.
    max_refine_iter : int, default=10
        Refining rounds at most.
    random_state : int, RandomState instance or None, default=None
        Seeds the samples and FasterPAM.

    Attributes
    ----------
    medoid_indices_ : ndarray of shape (n_clusters,)
        Row numbers of the medoids in the input.
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The medoids.
    labels_ : ndarray of shape (n_samples,), int32
        The nearest medoid of each point.
    inertia_ : float
        Sum of the distances of the points to their medoid.
    n_iter_ : int
        Refining rounds run.
    n_features_in_ : int

    Notes
    -----
    CLARA (Kaufman & Rousseeuw) keeps memory linear in the input; FasterPAM (Schubert &
    Rousseeuw, the `kmedoids` package) clusters each sample. The refinement brings the cost
    on every point to within 0.03 % of PAM's on 20,000 points (docs/scale.md).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.r_[np.zeros((50, 2)), np.full((50, 2), 10.0)]
    >>> sorted(ClaraKMedoids(n_clusters=2, sample_size=40, random_state=0).fit(X).cluster_centers_[:, 0].tolist())
    [0.0, 10.0]
    """

    def __init__(
        self,
        n_clusters=8,
        sample_size=4_000,
        n_samples=5,
        refine_candidates=100,
        max_refine_iter=10,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.sample_size = sample_size
        self.n_samples = n_samples
        self.refine_candidates = refine_candidates
        self.max_refine_iter = max_refine_iter
        self.random_state = random_state

    def fit(self, X, y=None):
        X = check_array(X, dtype=np.float64, ensure_min_samples=2)
        if not 1 <= self.n_clusters < len(X):
            raise ValueError(f"n_clusters={self.n_clusters} needs more than {self.n_clusters} points")
        rng = check_random_state(self.random_state)
        self.n_features_in_ = X.shape[1]
        best_medoids, best_cost = None, np.inf
        for _ in range(self.n_samples):
            sample = rng.choice(len(X), min(self.sample_size, len(X)), replace=False)
            if best_medoids is not None:  # CLARA: the best medoids so far join every sample
                sample = np.union1d(sample, best_medoids)
            found = kmedoids.fasterpam(
                squareform(pdist(X[sample])),
                self.n_clusters,
                random_state=rng.randint(np.iinfo(np.int32).max),
                n_cpu=1,
            )
            medoids = sample[np.asarray(found.medoids, dtype=np.int64)]
            _, cost = nearest(X, X[medoids])
            if cost < best_cost:
                best_medoids, best_cost = medoids, cost
        self.medoid_indices_, self.n_iter_ = self._refine(X, best_medoids)
        self.cluster_centers_ = X[self.medoid_indices_]
        self.labels_, self.inertia_ = nearest(X, self.cluster_centers_)
        return self

    def _refine(self, X: np.ndarray, medoids: np.ndarray) -> tuple[np.ndarray, int]:
        """Swap each medoid for the best of the points nearest it while its cluster's cost drops."""
        medoids = medoids.copy()
        for iteration in range(1, self.max_refine_iter + 1):
            labels, _ = nearest(X, X[medoids])
            moved = False
            for cluster in range(self.n_clusters):
                members = np.flatnonzero(labels == cluster)
                if len(members) < 2:
                    continue
                closeness = np.linalg.norm(X[members] - X[medoids[cluster]], axis=1)
                keep = min(self.refine_candidates, len(members))
                candidates = members[np.argpartition(closeness, keep - 1)[:keep]]
                candidates = np.union1d(candidates, [medoids[cluster]])
                costs = np.zeros(len(candidates))
                for start in range(0, len(members), CHUNK_ROWS // 10):
                    costs += cdist(X[candidates], X[members[start : start + CHUNK_ROWS // 10]]).sum(axis=1)
                current = costs[np.searchsorted(candidates, medoids[cluster])]
                if costs.min() < current * (1 - 1e-12):
                    medoids[cluster] = candidates[costs.argmin()]
                    moved = True
            if not moved:
                return medoids, iteration
        return medoids, self.max_refine_iter
