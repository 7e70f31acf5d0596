"""The one settings object: defaults, then an optional `kic.toml`, then `KIC_*` env vars.

Nested sections use `__` in env names, e.g. `KIC_CLUSTERING__PUBLISH=best-silhouette`;
lists are JSON, e.g. `KIC_CLUSTERING__KMEANS_K='[3, 4, 5]'`.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "KIC_CONFIG"
DEFAULT_CONFIG_FILE = "kic.toml"

# The study's final model: complete linkage cut at distance 20 (six personas).
STUDY_CANDIDATE = "hierarchical-complete-t20"
BEST_SILHOUETTE = "best-silhouette"


class ClusteringSettings(BaseModel):
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
    # Silhouette is exact up to this many influencers, a seeded sample of this size beyond.
    silhouette_sample_size: int = Field(20_000, ge=100)
    # A candidate name (e.g. "kmeans-k4") or "best-silhouette".
    publish: str = STUDY_CANDIDATE

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


class SyntheticSettings(BaseModel):
    """The seeded synthetic cohort used when no real source is configured."""

    model_config = ConfigDict(extra="forbid")  # a typo in kic.toml is an error, not ignored

    influencers: int = Field(1000, ge=10)
    seed: int = 20200601


class SandboxFaults(BaseModel):
    """Faults the sandbox injects. Lists name accounts; rates draw from a seeded stream."""

    model_config = ConfigDict(extra="forbid")  # a typo in kic.toml is an error, not ignored

    throttled: dict[str, int] = Field(default_factory=dict)  # account -> 429s before success
    failing: dict[str, int] = Field(default_factory=dict)  # account -> 503s before success
    retry_after_seconds: int = Field(1, ge=0)
    rate_limit_rate: float = Field(0.0, ge=0, le=1)  # share of requests starting a 429 burst
    rate_limit_burst: int = Field(3, ge=1)  # consecutive 429s in a burst
    server_error_rate: float = Field(0.0, ge=0, le=1)
    slow_rate: float = Field(0.0, ge=0, le=1)
    slow_seconds: float = Field(1.0, ge=0)
    malformed_rate: float = Field(0.0, ge=0, le=1)
    slow: list[str] = Field(default_factory=list)
    malformed: list[str] = Field(default_factory=list)
    private: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    login_walled: list[str] = Field(default_factory=list)
    checkpoint: list[str] = Field(default_factory=list)
    # Answers that parse but hold bad values: a negative follower count, a post from the future.
    corrupt: list[str] = Field(default_factory=list)


class SandboxSettings(BaseModel):
    """The local fake Instagram serving the synthetic cohort."""

    model_config = ConfigDict(extra="forbid")  # a typo in kic.toml is an error, not ignored

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)  # 0: a free port
    date: dt.date | None = None  # the day it serves; None: today in `timezone`
    tag: str = "뷰티"  # the hashtag every synthetic account posts with
    tag_page_size: int = Field(50, ge=1)
    graph_page_size: int = Field(5, ge=1)
    graph_access_token: SecretStr | None = None  # if set, the only token accepted
    faults: SandboxFaults = Field(default_factory=SandboxFaults)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KIC_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    warehouse: Path = Path("data/warehouse.duckdb")  # the scheduler's: written by runs only
    # The analysts' read-only copy, refreshed after every successful run (default: beside
    # the warehouse, named analytics.duckdb).
    analytics_copy: Path | None = None
    clustering: ClusteringSettings = Field(default_factory=ClusteringSettings)
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)

    # Crawling. Base URLs point the same spider at Instagram, a fixture server or the sandbox.
    web_base_url: str = "https://www.instagram.com"
    web_app_id: str = "936619743392459"  # the web client's X-IG-App-ID
    web_sessionid: SecretStr | None = None  # Instagram session cookie, if crawling logged in
    graph_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v21.0"
    graph_user_id: str | None = None  # the app's own Instagram business account id
    graph_access_token: SecretStr | None = None
    # Name of a Prefect Secret block holding the Graph API token, read when the env has none.
    graph_access_token_block: str | None = None
    posts_per_account: int = Field(12, ge=1)  # the profile grid's 12, as the study read
    tag_max_pages: int = Field(3, ge=1)
    timezone: str = "Asia/Seoul"  # the day a crawl describes is a day in this zone
    # How long a run waits for another process holding the warehouse before it gives up.
    lock_wait_seconds: float = Field(120.0, ge=0)

    @property
    def analytics_path(self) -> Path:
        return self.analytics_copy or self.warehouse.with_name("analytics.duckdb")

    @property
    def data_docs_path(self) -> Path:
        """Great Expectations Data Docs (open index.html), beside the warehouse."""
        return self.warehouse.parent / "data_docs"

    @property
    def validation_results_path(self) -> Path:
        """GX's own validation results, which the Data Docs index lists."""
        return self.warehouse.parent / "gx_validations"

    def today(self) -> dt.date:
        """Today in the settings' time zone: the day a crawl made now describes."""
        return dt.datetime.now(ZoneInfo(self.timezone)).date()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > kic.toml > defaults.
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file()),
        )


def config_file() -> Path:
    """The optional TOML config: `$KIC_CONFIG` if set, else ./kic.toml."""
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))


def load_settings(**overrides) -> Settings:
    """Read settings now (env and file are read on every call, never cached)."""
    path = config_file()
    if CONFIG_ENV in os.environ and not path.is_file():
        from kic.errors import KicError

        raise KicError(f"{CONFIG_ENV}={path}: no such config file")
    return Settings(**overrides)
