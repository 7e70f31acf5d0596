import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.base import clone
from sklearn.metrics import silhouette_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.candidates import (
    candidate_grid,
    choose,
    evaluate,
    mean_silhouette,
    within_cluster_sse,
)
from models.config import ClusteringConfig
from models.hierarchical import HierarchicalClustering
from models.recluster import fit_candidates
from warehouse.errors import KicError


def blobs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0], [30, 0], [0, 30]])
    return np.vstack([c + rng.normal(0, 1, (n, 2)) for c in centers])


@parametrize_with_checks([HierarchicalClustering(), HierarchicalClustering(n_clusters=3)])
def test_hierarchical_follows_the_scikit_learn_contract(estimator, check):
    check(estimator)


@pytest.mark.parametrize("method", ["complete", "single", "average", "ward"])
def test_hierarchical_cuts_like_scipy(method):
    X = blobs()
    fitted = HierarchicalClustering(method=method, distance_threshold=10).fit(X)
    expected = fcluster(linkage(X, method=method), t=10, criterion="distance")
    assert np.array_equal(fitted.labels_, expected - 1)
    assert fitted.n_clusters_ == 3
    by_k = HierarchicalClustering(method=method, n_clusters=2).fit(X)
    assert by_k.n_clusters_ == 2


def test_within_cluster_sse_matches_kmeans_inertia():
    from sklearn.cluster import KMeans

    X = blobs()
    km = KMeans(3, n_init=3, random_state=0).fit(X)
    assert within_cluster_sse(X, km.labels_) == pytest.approx(km.inertia_)


def test_candidates_are_seeded_and_repeatable():
    X = blobs(1)
    cfg = ClusteringConfig(kmeans_k=[3, 5], kmedoids_k=[3, 4], hierarchical_k=[3])
    first = [evaluate(c, X, cfg) for c in candidate_grid(cfg)]
    again = [evaluate(c, X, cfg) for c in candidate_grid(cfg)]
    assert [r.name for r in first] == [
        "kmeans-k3",
        "kmeans-k5",
        "kmedoids-k3",
        "kmedoids-k4",
        "hierarchical-complete-t20",
        "hierarchical-complete-t25",
        "hierarchical-complete-t30",
        "hierarchical-complete-k3",
    ]
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.labels, b.labels) and a.silhouette == b.silhouette
        assert sum(a.sizes) == len(X) and list(a.sizes) == sorted(a.sizes, reverse=True)


def test_grid_estimators_are_unfitted_templates():
    for candidate in candidate_grid(ClusteringConfig()):
        assert not hasattr(candidate.estimator, "labels_")
        assert clone(candidate.estimator).get_params() == candidate.estimator.get_params()


def test_silhouette_is_exact_up_to_the_sample_size_and_sampled_beyond():
    X = blobs(2, n=100)
    labels = HierarchicalClustering(distance_threshold=10).fit(X).labels_
    assert mean_silhouette(X, labels, 300, seed=1) == pytest.approx(silhouette_score(X, labels))
    sampled = mean_silhouette(X, labels, 100, seed=1)
    assert sampled == mean_silhouette(X, labels, 100, seed=1)
    assert sampled != mean_silhouette(X, labels, 100, seed=2)
    assert mean_silhouette(X, np.zeros(len(X), dtype=int), 300, seed=1) is None


def test_choose_by_name_or_best_silhouette():
    X = blobs(3)
    cfg = ClusteringConfig(kmeans_k=[2, 3, 4], kmedoids_k=[], hierarchical_thresholds=[10])
    results = [evaluate(c, X, cfg) for c in candidate_grid(cfg)]
    best = choose(results, "best-silhouette")
    assert best.silhouette == max(r.silhouette for r in results)
    assert best.n_clusters == 3
    assert choose(results, "kmeans-k4").name == "kmeans-k4"


def test_an_unknown_published_candidate_fails_before_fitting():
    cfg = ClusteringConfig(publish="kmeans-k99")
    with pytest.raises(KicError, match="kmeans-k99"):
        fit_candidates(None, cfg)


def test_scaling_changes_the_space_clustered():
    rng = np.random.default_rng(0)
    # Two groups apart on a small-valued axis only: unscaled, the wide axis dominates.
    X = np.c_[rng.uniform(0, 100, 200), np.r_[np.zeros(100), np.ones(100)] + rng.normal(0, 0.01, 200)]
    import pandas as pd

    frame = pd.DataFrame({"username": [f"u{i}" for i in range(200)], "er": X[:, 0], "active_rate": X[:, 1]})
    cfg = dict(kmeans_k=[2], kmedoids_k=[], hierarchical_thresholds=[], elbow_k=[1], publish="kmeans-k2")
    truth = np.r_[np.zeros(100), np.ones(100)]

    def agreement(scaling):
        (result,), _ = fit_candidates(frame, ClusteringConfig(scaling=scaling, **cfg))
        same = (result.labels == truth).mean()
        return max(same, 1 - same)

    assert agreement("standard") == 1.0
    assert agreement("none") < 0.9
