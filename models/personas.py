"""Naming clusters as the study's marketing personas.

Levels. A cluster's mean ER and mean active_rate (both percentages) are each placed on a
level by a robust z-score against the whole clustered cohort: (cluster mean - cohort
median) / (1.4826 x the cohort's median absolute deviation), a scale a few outliers cannot
inflate (the cohort standard deviation can: one influencer at 500 % ER made a cluster at
10 % look ordinary). low below 3.5 (Iglewicz and Hoaglin's cutoff for a value that stands
out), middle from 3.5, high from 12 (the study's "very high" clusters lie at 17 and beyond,
its middling ones at 10 and below). The level is a threshold on the cluster's own mean, so
names are monotone: a cluster named higher on an axis never has a lower mean on it. On the
study's data this gives exactly the study's mapping.

Names. The (ER level, active_rate level) pair names the persona: the study's six names
cover six pairs; the other three are named in the same spirit. Two clusters on the same
pair are told apart by follower tier (nano < 10k, micro < 100k, mid < 500k, macro < 1M,
mega; of the cluster's median follower count), e.g. "Lowest benefit · micro"; clusters that
share the tier too by an ordinal word in order of mean active_rate, then mean ER, highest
first ("Lowest benefit · micro · first"); so every name within a snapshot is its own, and
a name holds words only: no number that moves with the data. Clusters are never merged:
the snapshot keeps the clustering as fitted. A cluster alone on its pair keeps the plain
name. Names are given when a persona frame is made (models/frames.py) and kept with it.

Rank orders personas by value to a marketer: score = 2 * ER level + 3 * active_rate level
(levels 0, 1, 2), so active_rate (buying intent) weighs more than ER (trust), but a high
ER still beats a middling active_rate, as in the study's ranking. Ties go to the cluster
with the higher mean active_rate, then the higher mean ER.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVELS = ("low", "middle", "high")
MIDDLE_FROM_Z = 3.5
HIGH_FROM_Z = 12.0
MAD_TO_SD = 1.4826  # the median absolute deviation of a normal sample, times this, estimates its sd
MEAN_AD_TO_SD = 1.2533  # the same for the mean absolute deviation, used where over half the values are equal
ER_WEIGHT, ACTIVE_RATE_WEIGHT = 2, 3

# (ER level, active_rate level) -> persona.
PERSONAS = {
    ("high", "high"): "Highest benefit",
    ("low", "high"): "Low Cost High benefit",
    ("high", "low"): "High Interactive",
    ("low", "middle"): "Middle benefit",
    ("middle", "low"): "Middle Interactive",
    ("low", "low"): "Lowest benefit",
    # Not in the study's result; named by the same reading of the two axes.
    ("middle", "high"): "High benefit",
    ("high", "middle"): "High Interactive Middle benefit",
    ("middle", "middle"): "Balanced Middle",
}


# Follower tiers marketers use, by upper bound (exclusive); the last has none. As the contract
# of the SQL macro follower_tier() states them (transforms/sql/macros/follower_tier.toml;
# tests/test_vocabulary.py compares the two).
FOLLOWER_TIERS = (("nano", 10_000), ("micro", 100_000), ("mid", 500_000), ("macro", 1_000_000), ("mega", None))


def follower_tier(followers: np.ndarray) -> np.ndarray:
    """The follower tier of each count (object array of tier names; None where the count is NaN)."""
    counts = np.asarray(followers, dtype=np.float64)
    bounds = np.array([bound for _, bound in FOLLOWER_TIERS[:-1]], dtype=np.float64)
    names = np.array([name for name, _ in FOLLOWER_TIERS], dtype=object)
    tiers = names[np.searchsorted(bounds, counts, side="right").clip(max=len(names) - 1)]
    tiers[np.isnan(counts)] = None
    return tiers


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """The cohort's median and robust spread (MAD-based; mean-AD-based if the MAD is 0)."""
    values = np.asarray(values, dtype=np.float64)
    median = float(np.median(values))
    deviations = np.abs(values - median)
    spread = MAD_TO_SD * float(np.median(deviations))
    if not spread > 0:
        spread = MEAN_AD_TO_SD * float(deviations.mean())
    return median, spread


def levels(values, cohort_median: float, cohort_spread: float) -> np.ndarray:
    """low / middle / high of each value by its robust z-score in the cohort (all "low" if the
    cohort has no spread: nothing stands out)."""
    values = np.asarray(values, dtype=np.float64)
    if not cohort_spread > 0:
        return np.full(values.shape, LEVELS[0], dtype=object)
    z = (values - cohort_median) / cohort_spread
    return np.array(LEVELS, dtype=object)[np.searchsorted([MIDDLE_FROM_Z, HIGH_FROM_Z], z, side="right")]


def unique_names(out: pd.DataFrame) -> pd.Series:
    """Each cluster's persona, qualified where two clusters would share a name (see the module)."""
    names = out["persona"].copy()
    shared = names.duplicated(keep=False)
    names[shared] = names[shared] + " · " + out.loc[shared, "follower_tier"].fillna("unknown tier")
    shared = names.duplicated(keep=False)
    if shared.any():
        order = out[shared].sort_values(["mean_active_rate", "mean_er"], ascending=False, kind="stable")
        place = order.groupby(names[order.index], sort=False).cumcount()
        names[order.index] = names[order.index] + " · " + place.map(ordinal)
    return names


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def ordinal(place: int) -> str:
    """first, second, ... for a 0-based place (a persona frame holds a handful)."""
    return ORDINALS[place] if place < len(ORDINALS) else f"{ORDINALS[-1]} and {ordinal(place - len(ORDINALS))}"


def name_personas(profiles: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """Add er_level, active_rate_level, follower_tier, persona and rank to per-cluster profiles.

    `profiles` needs cluster, mean_er, mean_active_rate and median_follower per cluster;
    `cohort` the er and active_rate of every clustered influencer.
    """
    out = profiles.copy()
    er_median, er_spread = robust_scale(cohort["er"])
    ar_median, ar_spread = robust_scale(cohort["active_rate"])
    out["er_level"] = levels(out["mean_er"], er_median, er_spread)
    out["active_rate_level"] = levels(out["mean_active_rate"], ar_median, ar_spread)
    out["follower_tier"] = follower_tier(out["median_follower"]) if "median_follower" in out else None
    out["persona"] = [PERSONAS[pair] for pair in zip(out["er_level"], out["active_rate_level"], strict=True)]
    out["persona"] = unique_names(out)
    score = ER_WEIGHT * out["er_level"].map(LEVELS.index) + ACTIVE_RATE_WEIGHT * out["active_rate_level"].map(
        LEVELS.index
    )
    order = np.lexsort((-out["mean_er"].to_numpy(), -out["mean_active_rate"].to_numpy(), -score.to_numpy()))
    out["rank"] = 0
    out.iloc[order, out.columns.get_loc("rank")] = np.arange(1, len(out) + 1)
    return out
