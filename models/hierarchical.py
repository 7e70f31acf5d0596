"""Agglomerative clustering cut by a distance threshold or a cluster count (scikit-learn API).

The tree is built by fastcluster (the same merges as SciPy's `linkage`, without copying the
distance matrix). Up to `max_points` points it is built on the points themselves, exactly.
Beyond, complete linkage is built on grid cells instead (micro-clusters): the smallest
square cells that leave at most `max_points` occupied cells; the distance between two cells
is the largest distance between their points' bounding boxes. So points sharing a cell
(at most `max_cell_diameter_` apart) are merged first, and every merge height is the exact
one over-estimated by at most twice that diameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import fastcluster
import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster
from scipy.spatial.distance import pdist
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.utils.validation import check_array

LINKAGES = ("complete", "single", "average", "ward")
# A snapshot keeps this many of its tree's top merges (clusters.dendrogram): enough to see
# the study's cuts (3 to 6 clusters) and the outliers split off above them.
DENDROGRAM_MERGES = 30


@dataclass(frozen=True)
class Tree:
    """A dendrogram over `len(linkage) + 1` leaves, and the leaf of every point."""

    linkage: np.ndarray  # SciPy's linkage matrix
    leaf_of_point: np.ndarray  # leaf index per point (the identity when exact)
    max_cell_diameter: float  # 0 when built on the points themselves

    @property
    def leaves(self) -> int:
        return len(self.linkage) + 1

    def cut(self, distance_threshold: float | None = None, n_clusters: int | None = None) -> np.ndarray:
        """0-based cluster labels of the points: by height (fcluster 'distance') or by count ('maxclust')."""
        if n_clusters is not None:
            by_leaf = fcluster(self.linkage, t=n_clusters, criterion="maxclust")
        else:
            by_leaf = fcluster(self.linkage, t=distance_threshold, criterion="distance")
        return by_leaf.astype(np.int64)[self.leaf_of_point] - 1  # fcluster numbers from 1


def top_merges(tree: Tree, merges: int = DENDROGRAM_MERGES) -> pd.DataFrame:
    """The last `merges` merges of the tree as a linkage over the subtrees below them (clusters.dendrogram rows).

    Leaves of the truncated tree are numbered 0..kept in merge order of first use; merge m
    creates node kept + 1 + m, as in SciPy's linkage matrices. Sizes count influencers.
    """
    linkage, leaves = tree.linkage, tree.leaves
    kept = min(merges, leaves - 1)
    size = np.zeros(2 * leaves - 1, dtype=np.int64)
    size[:leaves] = np.bincount(tree.leaf_of_point, minlength=leaves)
    # One step per merge of the tree, which has at most max_points (or exact_max) leaves.
    for i, (a, b) in enumerate(linkage[:, :2].astype(np.int64)):
        size[leaves + i] = size[a] + size[b]
    top = linkage[len(linkage) - kept :]
    old = top[:, :2].astype(np.int64)
    first_kept_node = leaves + len(linkage) - kept
    below = np.unique(old[old < first_kept_node], return_index=True)
    subtrees = below[0][np.argsort(below[1])]  # in order of first use
    new_id = {int(node): n for n, node in enumerate(subtrees)}
    new_id.update({first_kept_node + m: len(subtrees) + m for m in range(kept)})
    remap = np.vectorize(new_id.__getitem__, otypes=[np.int64])
    return pd.DataFrame(
        {
            "merge": np.arange(kept, dtype=np.int64),
            "left": remap(old[:, 0]) if kept else np.empty(0, np.int64),
            "right": remap(old[:, 1]) if kept else np.empty(0, np.int64),
            "height": top[:, 2],
            "size": size[first_kept_node : first_kept_node + kept],
            "left_size": size[old[:, 0]],
            "right_size": size[old[:, 1]],
        }
    )


def grid_cells(X: np.ndarray, max_cells: int) -> tuple[np.ndarray, float]:
    """The cell of every point on the finest square grid with at most `max_cells` occupied cells, and its side."""
    low = X.min(axis=0)
    span = float((X.max(axis=0) - low).max()) or 1.0

    def cells(side: float) -> tuple[int, np.ndarray]:
        ij = np.floor((X - low) / side).astype(np.int64)
        if X.shape[1] == 2:  # one integer key per cell: faster than unique rows
            keys, leaf = np.unique(ij[:, 0] * (int(span / side) + 2) + ij[:, 1], return_inverse=True)
        else:
            keys, leaf = np.unique(ij, axis=0, return_inverse=True)
        return len(keys), leaf.ravel()

    fine, coarse = span / 2**24, span  # coarse: one cell (or four) always fits
    for _ in range(16):  # bisect the side on a log scale (to within 0.1 %)
        side = float(np.sqrt(fine * coarse))
        if cells(side)[0] <= max_cells:
            coarse = side
        else:
            fine = side
    return cells(coarse)[1], coarse


def box_distances(X: np.ndarray, leaf: np.ndarray, leaves: int) -> np.ndarray:
    """Condensed matrix of the largest distance between the bounding boxes of every two cells.

    Per axis, two boxes with centres c and half-widths h reach |c_i - c_j| + h_i + h_j apart.
    """
    low = np.full((leaves, X.shape[1]), np.inf)
    high = np.full((leaves, X.shape[1]), -np.inf)
    for axis in range(X.shape[1]):
        np.minimum.at(low[:, axis], leaf, X[:, axis])
        np.maximum.at(high[:, axis], leaf, X[:, axis])
    centre, half = ((high + low) / 2).T.copy(), ((high - low) / 2).T.copy()
    condensed = np.empty(leaves * (leaves - 1) // 2)
    start = 0
    for i in range(leaves - 1):
        end = start + leaves - 1 - i
        squared = np.zeros(end - start)
        for c, h in zip(centre, half, strict=True):
            reach = np.abs(c[i + 1 :] - c[i])
            reach += h[i + 1 :]
            reach += h[i]
            squared += reach * reach
        np.sqrt(squared, out=condensed[start:end])
        start = end
    return condensed


def build_tree(X: np.ndarray, method: str = "complete", max_points: int | None = None) -> Tree:
    """The dendrogram of X: on the points up to `max_points`, on grid cells beyond (complete linkage only)."""
    if method not in LINKAGES:
        raise ValueError(f"method must be one of {LINKAGES}, got {method!r}")
    if max_points is None or len(X) <= max_points:
        linkage = fastcluster.linkage(pdist(X), method=method, preserve_input=False)
        return Tree(linkage, np.arange(len(X)), 0.0)
    if method != "complete":
        raise ValueError(
            f"only complete linkage has a micro-cluster summary: {len(X)} points > max_points={max_points}"
        )
    leaf, side = grid_cells(X, max_points)
    leaves = int(leaf.max()) + 1
    linkage = fastcluster.linkage(box_distances(X, leaf, leaves), method="complete", preserve_input=False)
    return Tree(linkage, leaf, side * np.sqrt(X.shape[1]))


class HierarchicalClustering(ClusterMixin, BaseEstimator):
    """Agglomerative clustering as the study ran it (SciPy's `linkage` + `fcluster`).

    The tree is cut into `n_clusters` clusters (fcluster criterion 'maxclust') when that is
    given, else at height `distance_threshold` (criterion 'distance'; the study's final
    model: complete linkage at 20). With `max_points`, larger inputs are summarised into at
    most that many grid cells first (see the module). Deterministic: no randomness involved.
    """

    def __init__(self, method="complete", distance_threshold=20.0, n_clusters=None, max_points=None):
        self.method = method
        self.distance_threshold = distance_threshold
        self.n_clusters = n_clusters
        self.max_points = max_points

    def fit(self, X, y=None):
        X = check_array(X, dtype=np.float64, ensure_min_samples=2)
        if self.n_clusters is None and self.distance_threshold is None:
            raise ValueError("give n_clusters or distance_threshold")
        self.n_features_in_ = X.shape[1]
        tree = build_tree(X, self.method, self.max_points)
        self.linkage_matrix_ = tree.linkage
        self.max_cell_diameter_ = tree.max_cell_diameter
        self.labels_ = tree.cut(self.distance_threshold, self.n_clusters)
        self.n_clusters_ = int(self.labels_.max()) + 1
        return self
