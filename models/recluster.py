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
from models.frames import (
    ASSIGNED_BY,
    FIT,
    Frame,
    Space,
    Standing,
    keep_personas,
    population_shift,
    settings_changed,
    space_of,
)
from models.hierarchical import Tree, top_merges
from models.personas import name_personas
from models.silhouette import silhouettes
from warehouse.errors import KicError

MIN_INFLUENCERS = 3
Probe = Callable[[str], contextlib.AbstractContextManager]


class ClusterableArrays(Protocol):
    """The clusterable influencers of one feature date, in a fixed order."""

    er: np.ndarray
    active_rate: np.ndarray
    follower: np.ndarray
    fingerprint: str  # identifies the data: same influencers and values, same fingerprint


def no_probe(part: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class FrameDecision:
    """Whether a snapshot keeps the standing persona frame or makes one from its fit, and why."""

    made: bool
    why: str  # in a marketer's words, e.g. "kept: the population shift 0.004 is below 0.25"
    space: Space
    frame_id: int | None  # the frame kept; None when made (it takes the new snapshot's version)
    population_shift: float | None  # PSI of the personas' shares against the standing frame's
    assigned_by: np.ndarray  # per influencer, int8: its place in models.frames.ASSIGNED_BY
    distance_ratio: np.ndarray  # per influencer who crossed: old centre's distance / new one's; else NaN


@dataclass(frozen=True)
class SnapshotDraft:
    """A snapshot's content before it is given a version."""

    feature_date: date
    data_fingerprint: str
    parameters: dict
    published: str
    candidates: pd.DataFrame  # one row per candidate
    elbow: pd.DataFrame  # k, sse
    clusters: np.ndarray  # published cluster of each influencer, in input order (1.., by size when made)
    profiles: pd.DataFrame  # one row per published cluster
    dendrogram: pd.DataFrame  # the hierarchical tree's top merges (models.hierarchical.top_merges)
    frame: FrameDecision

    def snapshot_row(self) -> dict:
        """The clusters.snapshots row, without what the warehouse adds (version, time, code)."""
        return {
            "feature_date": self.feature_date,
            "n_influencers": self.n_influencers,
            "data_fingerprint": self.data_fingerprint,
            "parameters": self.parameters,
            "published_candidate": self.published,
            "n_clusters": self.n_clusters,
            "frame_id": self.frame.frame_id,
            "frame_made": self.frame.made,
            "frame_why": self.frame.why,
            "population_shift": self.frame.population_shift,
        }

    def frame_space(self) -> dict:
        """The clusters.frames row of a frame this snapshot makes, without its id."""
        space = self.frame.space
        return {"scaling": space.scaling, "space_offset": list(space.offset), "space_scale": list(space.scale)}

    def tables(self) -> dict[str, pd.DataFrame]:
        """The rows of the small clusters.* tables under a snapshot, in insertion order."""
        return {
            "candidates": self.candidates,
            "kmeans_elbow": self.elbow,
            "profiles": self.profiles,
            "dendrogram": self.dendrogram,
        }

    def cluster_per_row(self) -> pd.DataFrame:
        """row_index (the influencer's place in the input order), its cluster and how it got it."""
        return pd.DataFrame(
            {
                "row_index": np.arange(len(self.clusters), dtype=np.int64),
                "cluster": self.clusters,
                "assigned_by": pd.Categorical.from_codes(self.frame.assigned_by, ASSIGNED_BY),
                "distance_ratio": self.frame.distance_ratio,
            }
        )

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


def cluster_profiles(features: ClusterableArrays, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-cluster profiles, clusters renumbered 1.. by size (largest first), and the new labels."""
    present, codes = np.unique(labels, return_inverse=True)
    stats = cluster_stats(features, codes)
    ranked = stats.sort_values(["size", "mean_er", "mean_active_rate"], ascending=False).index.to_numpy()
    renumber = np.empty(len(present), dtype=np.int64)
    renumber[ranked] = np.arange(1, len(present) + 1)
    stats = stats.loc[ranked].reset_index(drop=True)
    stats.insert(0, "cluster", np.arange(1, len(present) + 1))
    cohort = pd.DataFrame({"er": features.er, "active_rate": features.active_rate})
    return name_personas(stats, cohort), renumber[codes]


def kept_profiles(features: ClusterableArrays, clusters: np.ndarray, frame: Frame) -> pd.DataFrame:
    """Per-cluster profiles of a kept frame: this week's numbers under the frame's ids, names and ranks."""
    present, codes = np.unique(clusters, return_inverse=True)
    stats = cluster_stats(features, codes)
    stats.insert(0, "cluster", present)
    naming = ["persona_id", "persona", "er_level", "active_rate_level", "follower_tier", "rank"]
    profiles = stats.join(frame.personas.set_index("cluster")[naming], on="cluster")
    profiles["rank"] = profiles["rank"].rank(method="first").astype(np.int64)  # 1.. among the personas present
    return profiles


def cluster_stats(features: ClusterableArrays, codes: np.ndarray) -> pd.DataFrame:
    """size, means and medians of each cluster coded 0.. (one row per code)."""
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
    return stats


def through_frame(
    features: ClusterableArrays,
    cfg: ClusteringConfig,
    fitted: tuple[pd.DataFrame, np.ndarray],
    standing: Standing | None,
    rebase: bool,
) -> tuple[pd.DataFrame, np.ndarray, FrameDecision]:
    """What a snapshot publishes: the standing frame kept by the hysteresis rule, or a frame made
    from the fit (models.frames says when); profiles, cluster per influencer, the decision."""
    n = len(features.er)

    def made(why: str, shift: float | None = None):
        space = space_of(features.er, features.active_rate, cfg.scaling)
        by_fit = np.full(n, ASSIGNED_BY.index(FIT), dtype=np.int8)
        return (*fitted, FrameDecision(True, why, space, None, shift, by_fit, np.full(n, np.nan)))

    if rebase:
        return made("made: a re-base was asked for")
    if standing is None:
        return made("made: the warehouse had no persona frame yet")
    frame = standing.frame
    changed = settings_changed(standing, cfg.model_dump(mode="json"))
    if changed:
        return made(f"made: the clustering settings changed ({', '.join(changed)})")
    kept = keep_personas(standing, features.er, features.active_rate, cfg.persona_margin)
    shift = population_shift(frame, kept.clusters)
    if shift >= cfg.reframe_at_shift:
        return made(
            f"made: the population shifted (a PSI of {shift:.3f} over the personas' shares, "
            f"at least {cfg.reframe_at_shift:g})",
            shift,
        )
    why = f"kept frame {frame.frame_id}: the population shift (PSI {shift:.3f}) is below {cfg.reframe_at_shift:g}"
    decision = FrameDecision(False, why, frame.space, frame.frame_id, shift, kept.assigned_by, kept.distance_ratio)
    return kept_profiles(features, kept.clusters, frame), kept.clusters, decision


def recluster(
    features: ClusterableArrays,
    cfg: ClusteringConfig,
    feature_date: date,
    probe: Probe = no_probe,
    standing: Standing | None = None,
    rebase: bool = False,
) -> SnapshotDraft:
    """Fit all candidates on the clusterable features, score them, and publish through the persona
    frame: the standing one kept, or one made from the fit (models.frames)."""
    X = scale(np.column_stack([features.er, features.active_rate]).astype(np.float64), cfg.scaling)
    results, sse_by_k, path = fit_candidates(X, cfg, probe)
    with probe("silhouettes"):
        scores = silhouettes(X, [r.labels for r in results], cfg.silhouette_sample_size, cfg.seed)
    by_name = {r.name: s for r, s in zip(results, scores, strict=True)}
    published, why = choose(
        results, {name: s.mean for name, s in by_name.items()}, cfg.publish, (cfg.min_personas, cfg.max_personas)
    )
    with probe("profiles"):
        fitted = cluster_profiles(features, published.labels)
        profiles, clusters, frame = through_frame(features, cfg, fitted, standing, rebase)
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
    return SnapshotDraft(
        feature_date=feature_date,
        data_fingerprint=features.fingerprint,
        parameters={**cfg.model_dump(mode="json"), "path": path, "influencers": len(X), "published_because": why},
        published=published.name,
        candidates=candidates,
        elbow=pd.DataFrame({"k": list(sse_by_k), "sse": list(sse_by_k.values())}),
        clusters=clusters,
        profiles=profiles,
        dendrogram=dendrogram_of(results),
        frame=frame,
    )


def dendrogram_of(results: list) -> pd.DataFrame:
    """Top merges of the hierarchical candidates' one tree; no rows when none was fitted."""
    tree = next((r.tree for r in results if r.tree is not None), None)
    if tree is None:
        return top_merges(Tree(np.empty((0, 4)), np.zeros(1, dtype=np.int64), 0.0))
    return top_merges(tree)
