"""Naming clusters as the study's marketing personas.

Rule: a cluster's mean ER and mean active_rate are each placed on a level relative to the
whole clustered cohort, by how many cohort standard deviations they lie above the cohort
mean: low (< 2 sd), middle (2 to 5 sd), high (>= 5 sd). The (ER level, active_rate level)
pair names the persona. The study's six names cover six pairs; the other three are
named in the same spirit. On the study's data this gives exactly the study's mapping.

Rank orders personas by value to a marketer: score = 2 * ER level + 3 * active_rate level
(levels 0, 1, 2), so active_rate (buying intent) weighs more than ER (trust), but a high
ER still beats a middling active_rate, as in the study's ranking. Ties go to the cluster
with the higher mean active_rate, then the higher mean ER.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVELS = ("low", "middle", "high")
MIDDLE_FROM_SD = 2.0
HIGH_FROM_SD = 5.0
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


# Follower tiers marketers use, by upper bound (exclusive); the last has none. The SQL macro
# follower_tier() of warehouse/views/000_macros.sql uses the same bounds (tested).
FOLLOWER_TIERS = (("nano", 10_000), ("micro", 100_000), ("mid", 500_000), ("macro", 1_000_000), ("mega", None))


def follower_tier(followers: np.ndarray) -> np.ndarray:
    """The follower tier of each count (object array of tier names; None where the count is NaN)."""
    counts = np.asarray(followers, dtype=np.float64)
    bounds = np.array([bound for _, bound in FOLLOWER_TIERS[:-1]], dtype=np.float64)
    names = np.array([name for name, _ in FOLLOWER_TIERS], dtype=object)
    tiers = names[np.searchsorted(bounds, counts, side="right").clip(max=len(names) - 1)]
    tiers[np.isnan(counts)] = None
    return tiers


def level(value: float, cohort_mean: float, cohort_sd: float) -> str:
    """low / middle / high by distance above the cohort mean, in cohort standard deviations."""
    if not cohort_sd > 0:
        return "low"
    z = (value - cohort_mean) / cohort_sd
    if z >= HIGH_FROM_SD:
        return "high"
    if z >= MIDDLE_FROM_SD:
        return "middle"
    return "low"


def name_personas(profiles: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """Add er_level, active_rate_level, persona and rank to per-cluster profiles.

    `profiles` needs mean_er and mean_active_rate per cluster; `cohort` the er and
    active_rate of every clustered influencer.
    """
    out = profiles.copy()
    er_mean, er_sd = cohort["er"].mean(), cohort["er"].std()
    ar_mean, ar_sd = cohort["active_rate"].mean(), cohort["active_rate"].std()
    out["er_level"] = [level(v, er_mean, er_sd) for v in out["mean_er"]]
    out["active_rate_level"] = [level(v, ar_mean, ar_sd) for v in out["mean_active_rate"]]
    out["persona"] = [PERSONAS[pair] for pair in zip(out["er_level"], out["active_rate_level"], strict=True)]
    score = ER_WEIGHT * out["er_level"].map(LEVELS.index) + ACTIVE_RATE_WEIGHT * out["active_rate_level"].map(
        LEVELS.index
    )
    order = np.lexsort((-out["mean_er"].to_numpy(), -out["mean_active_rate"].to_numpy(), -score.to_numpy()))
    out["rank"] = 0
    out.iloc[order, out.columns.get_loc("rank")] = np.arange(1, len(out) + 1)
    return out
