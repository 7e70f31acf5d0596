"""The sandbox's own settings (a development and demo tool, apart from the product's).

Read from `KIC_SANDBOX__*` environment variables (nested with `__`), e.g.
`KIC_SANDBOX__INFLUENCERS=300`, `KIC_SANDBOX__FAULTS__RATE_LIMIT_RATE=0.1`, and from the
`kic sandbox` / `kic run` options.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SandboxFaults(BaseModel):
    """Faults the sandbox injects. Lists name accounts; rates draw from a seeded stream."""

    model_config = ConfigDict(extra="forbid")

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


class SandboxQuota(BaseModel):
    """Calls one credential may make per rolling window; past it, calls are throttled."""

    model_config = ConfigDict(extra="forbid")

    calls: int = Field(100_000, ge=1)
    window_seconds: float = Field(60.0, gt=0)


class SandboxSettings(BaseSettings):
    """The local fake Instagram and the seeded synthetic cohort it serves."""

    model_config = SettingsConfigDict(env_prefix="KIC_SANDBOX__", env_nested_delimiter="__", extra="forbid")

    influencers: int = Field(1000, ge=10)  # size of the synthetic cohort
    seed: int = 20200601
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)  # 0: a free port
    date: dt.date | None = None  # the day it serves; None: today in `timezone`
    timezone: str = "Asia/Seoul"
    tag: str = "뷰티"  # the hashtag every synthetic account posts with
    tag_page_size: int = Field(50, ge=1)
    graph_page_size: int = Field(5, ge=1)
    graph_access_token: SecretStr | None = None  # if set, the only token accepted
    # Quotas as the real sources apply them: per Graph token (usage in X-App-Usage and
    # X-Business-Use-Case-Usage, error 80002 past it) and per client IP for the web client's
    # endpoints (429 "Please wait a few minutes", no usage headers). Generous by default, so
    # that `kic run` is bound by the crawl, not the quota; a crawl still paces by them.
    graph_quota: SandboxQuota = Field(default_factory=SandboxQuota)
    web_quota: SandboxQuota = Field(default_factory=SandboxQuota)
    faults: SandboxFaults = Field(default_factory=SandboxFaults)
