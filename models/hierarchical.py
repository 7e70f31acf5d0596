"""Agglomerative clustering with SciPy, cut by a distance threshold or a cluster count."""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_array

LINKAGES = ("complete", "single", "average", "ward")


class HierarchicalClustering(ClusterMixin, BaseEstimator):
    """SciPy `linkage` + `fcluster`, as the study ran it, behind the scikit-learn API.

    The tree is cut into `n_clusters` clusters (fcluster criterion 'maxclust') when that is
    given, else at height `distance_threshold` (criterion 'distance'; the study's final
    model: complete linkage at 20). Deterministic: no randomness involved.
    """

    def __init__(self, method="complete", metric="euclidean", distance_threshold=20.0, n_clusters=None):
        self.method = method
        self.metric = metric
        self.distance_threshold = distance_threshold
        self.n_clusters = n_clusters

    def fit(self, X, y=None):
        X = check_array(X, dtype=np.float64, ensure_min_samples=2)
        if self.n_clusters is None and self.distance_threshold is None:
            raise ValueError("give n_clusters or distance_threshold")
        if self.method not in LINKAGES:
            raise ValueError(f"method must be one of {LINKAGES}, got {self.method!r}")
        if self.method == "ward" and self.metric != "euclidean":
            raise ValueError("ward linkage needs the euclidean metric")
        self.n_features_in_ = X.shape[1]
        self.linkage_matrix_ = linkage(X, method=self.method, metric=self.metric)
        if self.n_clusters is not None:
            labels = fcluster(self.linkage_matrix_, t=self.n_clusters, criterion="maxclust")
        else:
            labels = fcluster(self.linkage_matrix_, t=self.distance_threshold, criterion="distance")
        self.labels_ = labels.astype(np.int64) - 1  # fcluster numbers from 1
        self.n_clusters_ = int(self.labels_.max()) + 1
        return self
