"""How influencers are clustered: the parameters every reclustering takes (validated)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The study's final model: complete linkage cut at distance 20 (six personas).
STUDY_CANDIDATE = "hierarchical-complete-t20"
BEST_SILHOUETTE = "best-silhouette"


class ClusteringConfig(BaseModel):
    """How influencers are clustered on (ER, active_rate) and which candidate is published."""

    model_config = ConfigDict(extra="forbid")  # a typo in kic.toml is an error, not ignored

    scaling: Literal["none", "standard", "minmax"] = "none"
    seed: int = 42
    kmeans_k: list[int] = Field(default_factory=lambda: list(range(3, 9)))
    kmeans_n_init: int = Field(10, ge=1)
    elbow_k: list[int] = Field(default_factory=lambda: list(range(1, 10)))
    kmedoids_k: list[int] = Field(default_factory=lambda: [3, 4, 5])
    kmedoids_method: Literal["pam", "alternate"] = "pam"
    hierarchical_linkage: Literal["complete", "single", "average", "ward"] = "complete"
    hierarchical_thresholds: list[float] = Field(default_factory=lambda: [20.0, 25.0, 30.0])
    hierarchical_k: list[int] = Field(default_factory=list)
    # Silhouette is exact up to this many influencers, a seeded sample of this size beyond
    # (stored with its sample size and standard error).
    silhouette_sample_size: int = Field(20_000, ge=100)
    # Which algorithms run. "exact": K-means restarted n_init times on every influencer,
    # PAM (BUILD + SWAP), complete linkage on every influencer. "scalable": K-means
    # initialised on a sample then run on everyone, CLARA K-medoids (FasterPAM on samples,
    # then refined on everyone), complete linkage on at most max_micro_clusters summaries.
    # "auto": exact up to exact_max_influencers, scalable beyond.
    strategy: Literal["auto", "exact", "scalable"] = "auto"
    exact_max_influencers: int = Field(2_000, ge=3)
    kmeans_sample_size: int = Field(20_000, ge=100)  # scalable K-means: its initialisation sample
    kmedoids_sample_size: int = Field(4_000, ge=100)  # scalable K-medoids: each CLARA sample
    kmedoids_samples: int = Field(3, ge=1)  # scalable K-medoids: CLARA samples drawn
    # Scalable linkage: exact on up to this many influencers; beyond, on this many grid cells
    # at most (the distance matrix takes 4 bytes x this number squared).
    max_micro_clusters: int = Field(14_000, ge=100)
    # A cohort whose chosen path would need more memory is refused before any fitting.
    memory_limit_gib: float = Field(4.0, gt=0)
    # A candidate name (e.g. "kmeans-k4") or "best-silhouette".
    publish: str = STUDY_CANDIDATE
    # How many personas a marketer can use. A candidate to publish that gives fewer or more
    # is replaced by the candidate of the same algorithm (else any) whose count is nearest
    # inside the range (ties: higher silhouette); the snapshot records why.
    min_personas: int = Field(4, ge=1)
    max_personas: int = Field(8, ge=1)
    # Persona frames (models/frames.py). An influencer moves to another persona only when it is
    # at least (1 + persona_margin) times as far from its persona's centre as from the other's;
    # the frame is remade when the personas' shares shift by a PSI of reframe_at_shift or more.
    persona_margin: float = Field(0.25, ge=0)
    reframe_at_shift: float = Field(0.25, gt=0)

    @model_validator(mode="after")
    def _persona_range(self) -> ClusteringConfig:
        if self.min_personas > self.max_personas:
            raise ValueError(f"min_personas ({self.min_personas}) is above max_personas ({self.max_personas})")
        return self

    @field_validator("kmeans_k", "kmedoids_k", "hierarchical_k")
    @classmethod
    def _at_least_two_clusters(cls, ks: list[int]) -> list[int]:
        if any(k < 2 for k in ks):
            raise ValueError("cluster counts must be >= 2")
        return sorted(set(ks))

    @field_validator("elbow_k")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError("elbow K must be >= 1")
        return sorted(set(ks))

    @field_validator("hierarchical_thresholds")
    @classmethod
    def _positive_thresholds(cls, ts: list[float]) -> list[float]:
        if any(t <= 0 for t in ts):
            raise ValueError("distance thresholds must be > 0")
        return sorted(set(ts))
