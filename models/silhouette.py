"""Mean silhouettes of many labelings at once: exact up to a sample size, a seeded sample beyond.

Every labeling is scored on the same points (the whole cohort, or one seeded sample of it),
so candidates are compared on equal terms and a rerun on the same data gives the same
scores. Distances from a block of points to all sampled points are computed once per block
and shared by every labeling (one matrix product per block); memory stays at one block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

BLOCK_ROWS = 1_024


@dataclass(frozen=True)
class Silhouette:
    mean: float | None  # None when undefined (fewer than 2 clusters, or one per point)
    standard_error: float | None  # None when exact (every point scored)
    sample_size: int  # points scored


def sample_indices(n: int, sample_size: int, seed: int) -> np.ndarray:
    """Every point up to `sample_size`, a seeded sample of that many beyond (sorted)."""
    if n <= sample_size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, sample_size, replace=False))


def silhouettes(X: np.ndarray, labelings: list[np.ndarray], sample_size: int, seed: int) -> list[Silhouette]:
    """The mean silhouette of each labeling of X (scikit-learn's definition: a singleton scores 0)."""
    picked = sample_indices(len(X), sample_size, seed)
    sampled = len(picked) < len(X)
    points = X[picked]
    columns, offsets, counts, defined = [], [], [], []
    start = 0
    for labels in labelings:
        present, codes = np.unique(labels[picked], return_inverse=True)
        columns.append(codes)
        offsets.append(start)
        counts.append(np.bincount(codes).astype(np.float64))
        defined.append(2 <= len(present) <= len(points) - 1)
        start += len(present)
    # One column per (labeling, cluster): sum of distances to the cluster = D @ membership.
    membership = np.zeros((len(points), start))
    for codes, offset in zip(columns, offsets, strict=True):
        membership[np.arange(len(points)), offset + codes] = 1.0
    scores = [np.zeros(len(points)) for _ in labelings]
    for block in range(0, len(points), BLOCK_ROWS):
        rows = slice(block, block + BLOCK_ROWS)
        sums = cdist(points[rows], points) @ membership
        for j, (codes, offset, count) in enumerate(zip(columns, offsets, counts, strict=True)):
            if not defined[j]:
                continue
            own = codes[rows]
            per_cluster = sums[:, offset : offset + len(count)]
            size = count[own]
            a = np.divide(per_cluster[np.arange(len(own)), own], size - 1, out=np.zeros(len(own)), where=size > 1)
            means = per_cluster / count
            means[np.arange(len(own)), own] = np.inf
            b = means.min(axis=1)
            score = np.divide(b - a, np.maximum(a, b), out=np.zeros(len(own)), where=np.maximum(a, b) > 0)
            scores[j][rows] = np.where(size > 1, score, 0.0)
    return [
        Silhouette(
            float(s.mean()) if ok else None,
            float(s.std(ddof=1) / np.sqrt(len(s))) if ok and sampled else None,
            len(points),
        )
        for s, ok in zip(scores, defined, strict=True)
    ]
