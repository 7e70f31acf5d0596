"""Agglomerative clustering: one tree, cut by a distance threshold or a cluster count.

The tree is built by fastcluster (the same merges as SciPy's `linkage`) on a condensed
distance matrix it overwrites: the matrix is held once, 8 bytes per pair. Up to
`max_points` points it is built on the points themselves, exactly. Beyond, complete
linkage is built on grid cells instead (micro-clusters): the smallest square cells that
leave at most `max_points` occupied cells; the distance between two cells is the largest
distance between their points' bounding boxes. So points sharing a cell (at most
`Tree.max_cell_diameter` apart) are merged first, and every merge height is the exact one
over-estimated by at most twice that diameter.
"""

from __future__ import annotations

from dataclasses import dataclass

import fastcluster
import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster
from scipy.spatial.distance import pdist

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
        return (by_leaf - 1).astype(np.int32)[self.leaf_of_point]  # fcluster numbers from 1


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

    def cells(side: float, numbered: bool = False) -> tuple[int, np.ndarray | None]:
        """How many cells of this side are occupied, and (numbered) the cell of every point."""
        if X.shape[1] != 2:
            keys, leaf = np.unique(np.floor((X - low) / side).astype(np.int64), axis=0, return_inverse=True)
            return len(keys), leaf.ravel().astype(np.int32)
        # One integer key per cell, built an axis at a time (no n x 2 temporaries); counted by
        # hashing, sorted only for the side kept.
        keys = np.floor((X[:, 0] - low[0]) / side).astype(np.int64)
        keys *= int(span / side) + 2
        keys += np.floor((X[:, 1] - low[1]) / side).astype(np.int64)
        if not numbered:
            return len(pd.unique(keys)), None
        present, leaf = np.unique(keys, return_inverse=True)
        return len(present), leaf.astype(np.int32)

    fine, coarse = span / 2**24, span  # coarse: one cell (or four) always fits
    for _ in range(16):  # bisect the side on a log scale (to within 0.1 %)
        side = float(np.sqrt(fine * coarse))
        if cells(side)[0] <= max_cells:
            coarse = side
        else:
            fine = side
    return cells(coarse, numbered=True)[1], coarse


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


def linkage_in_place(condensed: np.ndarray, method: str) -> np.ndarray:
    """fastcluster's linkage of a condensed float64 matrix, which it overwrites as it merges.

    Called below `fastcluster.linkage`, which copies its input whatever `preserve_input`
    says (its first `numpy.array` call copies under NumPy 2): at 20,000 leaves that copy
    was 1.6 GB.
    """
    if condensed.dtype != np.float64 or not condensed.flags.c_contiguous or not condensed.flags.writeable:
        raise ValueError("the condensed matrix must be a writeable, contiguous float64 array")
    n = int(np.ceil(np.sqrt(2 * len(condensed))))
    if n * (n - 1) // 2 != len(condensed):
        raise ValueError(f"{len(condensed)} distances are no condensed matrix")
    linkage = np.empty((n - 1, 4))
    if n > 1:
        fastcluster.linkage_wrap(n, condensed, linkage, fastcluster.mthidx[method])
    return linkage


def build_tree(X: np.ndarray, method: str = "complete", max_points: int | None = None) -> Tree:
    """The dendrogram of X: on the points up to `max_points`, on grid cells beyond (complete linkage only)."""
    if method not in LINKAGES:
        raise ValueError(f"method must be one of {LINKAGES}, got {method!r}")
    if max_points is None or len(X) <= max_points:
        return Tree(linkage_in_place(pdist(X), method), np.arange(len(X), dtype=np.int32), 0.0)
    if method != "complete":
        raise ValueError(
            f"only complete linkage has a micro-cluster summary: {len(X)} points > max_points={max_points}"
        )
    leaf, side = grid_cells(X, max_points)
    leaves = int(leaf.max()) + 1
    return Tree(linkage_in_place(box_distances(X, leaf, leaves), "complete"), leaf, side * np.sqrt(X.shape[1]))
