"""Persona frames: what a weekly snapshot keeps from the one before (pure).

A frame is the set of personas a snapshot publishes: their ids, names, levels, ranks and
regions. It is made from a weekly fit when a warehouse has none yet, when the operator asks
for it (`kic recluster --rebase`, or a change of the clustering settings the frame was made
with, other than the two that say how it is kept), or when the population shifted (below);
otherwise it is kept, and the week's fit is only a proposal, stored with the snapshot's
candidates.

Regions. A persona's region is the part of the (ER, active_rate) plane, in the clustering's
space (the study's unscaled percentages by default), nearer the persona's centre than any
other persona's centre; a centre is the mean of the persona's members when the frame was
made.

Hysteresis. In a kept frame an influencer keeps its persona of the snapshot before unless
its own numbers crossed into another persona's region by the margin: it is now at least
(1 + margin) times as far from its persona's centre as from the other's, and was not in the
snapshot before. The second half keeps the members that the fit placed off their region
when the frame was made (complete linkage does, near its cuts) where their numbers put
them, until the numbers move. Influencers new to the snapshot take the persona of their
region, with no margin.

Population shift. The frame is remade when the personas' shares of the cohort, as kept,
moved from their shares when the frame was made by a population stability index of at
least `reframe_at_shift`: PSI = sum over personas of (now - then) * ln(now / then), shares
floored at 0.0001; 0.25 is the conventional line of a significant shift. Noise moves almost
nobody, so it cannot remake a frame; a population that changed its shape does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# How an influencer got its persona in a snapshot (clusters.assignments.assigned_by); arrays
# hold the place of the word in ASSIGNED_BY (one byte per influencer, not a string).
FIT, KEPT, CROSSED, PLACED = ASSIGNED_BY = ("fit", "kept", "crossed", "placed")
SHARE_FLOOR = 1e-4
CHUNK_ROWS = 500_000  # rows per block of point-to-centre distances
NOWHERE = 0  # the frame cluster of an influencer absent from the snapshot before (clusters are 1..)


@dataclass(frozen=True)
class Space:
    """The clustering space: a point's coordinates are (x - offset) / scale."""

    scaling: str
    offset: np.ndarray
    scale: np.ndarray

    def __call__(self, er: np.ndarray, active_rate: np.ndarray) -> np.ndarray:
        return (np.column_stack([er, active_rate]) - self.offset) / self.scale


def space_of(er: np.ndarray, active_rate: np.ndarray, scaling: str) -> Space:
    """The space a fit on these features clustered in (as models.candidates.scale makes it)."""
    X = np.column_stack([er, active_rate]).astype(np.float64)
    if scaling == "none":
        offset, scale = np.zeros(2), np.ones(2)
    elif scaling == "standard":
        offset, scale = X.mean(axis=0), X.std(axis=0)
    elif scaling == "minmax":
        offset, scale = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
    else:
        raise ValueError(f"unknown scaling {scaling!r}")
    return Space(scaling, offset, np.where(scale > 0, scale, 1.0))


@dataclass(frozen=True)
class Frame:
    """A frame's personas, one row each, ordered by cluster: cluster (1..), persona_id, persona,
    er_level, active_rate_level, follower_tier, rank, centre_er, centre_active_rate, share."""

    frame_id: int  # the snapshot version whose fit made it
    personas: pd.DataFrame
    space: Space

    def centres(self) -> np.ndarray:
        return self.space(self.personas["centre_er"].to_numpy(), self.personas["centre_active_rate"].to_numpy())


@dataclass(frozen=True)
class Standing:
    """The latest snapshot's frame, and where each influencer of the new features stood in it."""

    frame: Frame
    previous_version: int
    settings: dict  # the clustering settings of the fit that made the frame
    cluster: np.ndarray  # its frame cluster in that snapshot, NOWHERE if it was not in it
    er: np.ndarray  # its numbers there (NaN if it was not in it)
    active_rate: np.ndarray


@dataclass(frozen=True)
class Kept:
    """The frame's persona of each influencer this week, and how it got it."""

    clusters: np.ndarray  # frame cluster (1..)
    assigned_by: np.ndarray  # int8: the place in ASSIGNED_BY of KEPT, CROSSED or PLACED
    distance_ratio: np.ndarray  # crossed: distance to the old persona's centre / to the new one's; else NaN


def standing_of(rows) -> Standing:
    """A Standing from what the warehouse stores (warehouse.snapshots.StandingRows)."""
    frame = Frame(rows.frame_id, rows.personas, Space(rows.scaling, rows.space_offset, rows.space_scale))
    return Standing(frame, rows.version, rows.frame_settings, rows.cluster, rows.er, rows.active_rate)


# Settings that say how a frame is kept, not how the fit that makes one is made.
KEEPING_SETTINGS = ("persona_margin", "reframe_at_shift")


def settings_changed(standing: Standing, settings: dict) -> list[str]:
    """The clustering settings that differ from those the standing frame was made with."""
    return [k for k, v in settings.items() if k not in KEEPING_SETTINGS and standing.settings.get(k) != v]


def keep_personas(standing: Standing, er: np.ndarray, active_rate: np.ndarray, margin: float) -> Kept:
    """Each influencer's persona in the standing frame by the hysteresis rule (see the module)."""
    centres = standing.frame.centres()
    index_of = np.full(int(standing.frame.personas["cluster"].max()) + 1, -1, dtype=np.int64)
    index_of[standing.frame.personas["cluster"].to_numpy()] = np.arange(len(centres))
    previous = np.where(standing.cluster > 0, index_of[np.clip(standing.cluster, 0, len(index_of) - 1)], -1)
    points = standing.frame.space(er, active_rate)
    before = standing.frame.space(standing.er, standing.active_rate)
    chosen = np.empty(len(points), dtype=np.int64)
    ratio = np.full(len(points), np.nan)
    by = np.empty(len(points), dtype=np.int8)
    for start in range(0, len(points), CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        chosen[rows], ratio[rows], by[rows] = keep_block(points[rows], before[rows], previous[rows], centres, margin)
    return Kept(standing.frame.personas["cluster"].to_numpy()[chosen], by, ratio)


def keep_block(points, before, previous, centres, margin):
    """keep_personas on a block of rows: frame indices, distance ratios of the crossed, how assigned."""
    distances = np.sqrt(((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2))
    nearest = distances.argmin(axis=1)
    known = previous >= 0
    rows = np.flatnonzero(known)
    own = previous[rows]
    others = distances[rows].copy()
    others[np.arange(len(rows)), own] = np.inf
    rival = others.argmin(axis=1)
    ratio_now = far_over_near(distances[rows, own], others[np.arange(len(rows)), rival])
    pair = centres[np.stack([own, rival], axis=1)]  # (rows, 2, 2): the own and the rival centre
    then = np.sqrt(((before[rows][:, None, :] - pair) ** 2).sum(axis=2))
    ratio_then = far_over_near(then[:, 0], then[:, 1])
    crossed = (ratio_now >= 1 + margin) & ~(ratio_then >= 1 + margin)
    chosen = nearest.copy()
    chosen[rows] = np.where(crossed, rival, own)
    ratio = np.full(len(points), np.nan)
    ratio[rows[crossed]] = ratio_now[crossed]
    by = np.full(len(points), ASSIGNED_BY.index(PLACED), dtype=np.int8)
    by[rows] = np.where(crossed, ASSIGNED_BY.index(CROSSED), ASSIGNED_BY.index(KEPT))
    return chosen, ratio, by


def far_over_near(far: np.ndarray, near: np.ndarray) -> np.ndarray:
    """far / near, infinite where near is 0 and far is not, 1 where both are."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(near > 0, far / np.where(near > 0, near, 1.0), np.where(far > 0, np.inf, 1.0))


def population_shift(frame: Frame, clusters: np.ndarray) -> float:
    """The population stability index between the personas' shares then (the frame's) and now."""
    then = frame.personas["share"].to_numpy(dtype=np.float64)
    counts = pd.Series(clusters).value_counts()
    now = counts.reindex(frame.personas["cluster"], fill_value=0).to_numpy(dtype=np.float64) / max(len(clusters), 1)
    then, now = np.maximum(then, SHARE_FLOOR), np.maximum(now, SHARE_FLOOR)
    return float(((now - then) * np.log(now / then)).sum())
