"""The one settings object: defaults, then an optional `kic.toml`, then `KIC_*` env vars.

Nested sections use `__` in env names, e.g. `KIC_CLUSTERING__PUBLISH=best-silhouette`;
lists are JSON, e.g. `KIC_CLUSTERING__KMEANS_K='[3, 4, 5]'`. Read here and only here
(by the CLI and by each flow run); lower layers get what they need as arguments.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from models.config import ClusteringConfig
from warehouse.db import DEFAULT_LOCK_WAIT_SECONDS
from warehouse.errors import KicError
from warehouse.query import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_SECONDS
from warehouse.vocabulary import DEFAULT_MAX_OBSERVATION_AGE_DAYS

CONFIG_ENV = "KIC_CONFIG"
DEFAULT_CONFIG_FILE = "kic.toml"

# The config file of the Settings being built (see load_settings).
_config_path: ContextVar[Path | None] = ContextVar("kic_config_path", default=None)


class QuotaSettings(BaseModel):
    """What each credential a crawl uses (a Graph token; a web session or egress IP) may call per
    rolling window, how close to that a crawl goes, and how long a night's crawl may take.
    See docs/collection.md."""

    model_config = ConfigDict(extra="forbid")

    # Graph API Platform Rate Limits: 200 calls per user token per rolling hour. Corrected by
    # the usage headers of every answer (X-App-Usage, X-Business-Use-Case-Usage).
    graph_calls: int = Field(200, ge=1)
    graph_window_seconds: float = Field(3600.0, gt=0)
    # The web client publishes no limit and sends no usage headers: instaloader's
    # RateController (the open-source reference) allows 75 of these calls per 11 minutes.
    web_calls: int = Field(75, ge=1)
    web_window_seconds: float = Field(660.0, gt=0)
    target_usage: float = Field(0.85, gt=0, le=1)  # the share of a limit a crawl uses: it slows down before it
    max_wait_seconds: float = Field(3600.0, ge=0)  # a longer wait for a quota stops the shard, the rest deferred
    max_throttled: int = Field(5, ge=1)  # throttled answers to one request before its shard stops
    # How long a night's crawl may run (from 03:00, the nightly schedule, to 23:00): its calls
    # stay in it, and the plan fills what the credentials may call in it.
    crawl_window_hours: float = Field(20.0, gt=0, le=24)
    # Distinct credentials the shards crawl with (tokens; IPs or sessions). Default: one per
    # shard (one machine, one token each). Shards sharing one share its quota.
    credentials: int | None = Field(None, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KIC_",
        env_nested_delimiter="__",
        extra="forbid",  # a typo in kic.toml is an error, not ignored
    )

    warehouse: Path = Path("data/warehouse.duckdb")  # the scheduler's: written by runs only
    # The analysts' read-only copy, refreshed after every successful run (default: beside
    # the warehouse, named analytics.duckdb).
    analytics_copy: Path | None = None
    clustering: ClusteringConfig = Field(default_factory=ClusteringConfig)

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
    lock_wait_seconds: float = Field(DEFAULT_LOCK_WAIT_SECONDS, ge=0)

    # Landing: crawls write Parquet here, the loader moves it into the warehouse. A folder
    # (default: `landing` beside the warehouse) or any fsspec URL (s3://bucket/kic-landing):
    # crawlers on other machines need one they all reach.
    landing_url: str | None = None
    landing_retention_days: float = Field(7.0, ge=0)  # landed files kept this long after loading
    # Reports written where none is asked for (data/reports/, the weekly flow's): the newest this
    # many snapshots' pages and member lists are kept (a million influencers' lists are 157 MiB a
    # week); `kic report VERSION` writes any older one again.
    reports_kept: int = Field(8, ge=1)
    # The nightly crawl is split into this many shards, each its own flow run of the
    # crawl-shard deployment, picked up by any worker polling the work pool.
    crawl_shards: int = Field(1, ge=1)
    crawl_shard_deployment: str = "crawl-shard/crawl-shard"
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    # A night fails (red in Prefect, `kic crawl` exits 1) when more than this share of the
    # accounts it reached failed (not found, blocked, error; deferred ones are not failures),
    # or when it read none.
    max_failure_share: float = Field(0.2, ge=0, le=1)
    # Features of a date take each influencer's latest observation; one older than this many
    # days is not clustered (reason `stale`). Keep it above the full-refresh cycle the nightly
    # plan reports.
    max_observation_age_days: int = Field(DEFAULT_MAX_OBSERVATION_AGE_DAYS, ge=0)

    # Render Great Expectations' Data Docs after each validation. Their index lists every
    # validation ever stored, so rendering it grows with history; off, a run still validates,
    # records quality.* and writes the bounded offline summary (data_docs/offline.html).
    data_docs: bool = True

    # `kic sql`: a query is stopped after this long, and refused if it returns more rows.
    sql_timeout_seconds: float = Field(DEFAULT_TIMEOUT_SECONDS, gt=0)
    sql_max_rows: int = Field(DEFAULT_MAX_ROWS, ge=1)

    @field_validator("timezone")
    @classmethod
    def known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Asia/Seoul)") from None
        return name

    @model_validator(mode="after")
    def copy_apart_from_warehouse(self) -> Settings:
        # Publishing replaces the copy (and its companions, <copy>.tmp, …) with a new one: were
        # it the warehouse, the warehouse would be replaced by a copy without its posts.
        warehouse, copy = (os.path.realpath(path) for path in (self.warehouse, self.analytics_path))
        if warehouse == copy or warehouse.startswith(copy + "."):
            raise ValueError(
                f"the warehouse {self.warehouse} would be the analysts' copy {self.analytics_path} "
                "(or one of its files): name the warehouse otherwise, or set analytics_copy"
            )
        return self

    @property
    def analytics_path(self) -> Path:
        return self.analytics_copy or self.warehouse.with_name("analytics.duckdb")

    @property
    def readable_path(self) -> Path:
        """What reading commands and steps open: the analysts' copy, else (not published yet) the warehouse."""
        return self.analytics_path if self.analytics_path.exists() else self.warehouse

    @property
    def landing_root(self) -> str:
        return self.landing_url or str(self.data_dir / "landing")

    @property
    def data_dir(self) -> Path:
        """Where runs keep what is not in the warehouse: logs, Data Docs, validation results."""
        return self.warehouse.parent

    @property
    def logs_path(self) -> Path:
        return self.data_dir / "logs"

    @property
    def data_docs_path(self) -> Path:
        """Great Expectations Data Docs (open index.html), beside the warehouse."""
        return self.data_dir / "data_docs"

    @property
    def validation_results_path(self) -> Path:
        """GX's own validation results, which the Data Docs index lists."""
        return self.data_dir / "gx_validations"

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
            TomlConfigSettingsSource(settings_cls, toml_file=_config_path.get() or config_file()),
        )


def config_file() -> Path:
    """The optional TOML config: `$KIC_CONFIG` if set, else ./kic.toml."""
    return Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))


def not_json(exc: SettingsError) -> str | None:
    """Which KIC_* variable holds the JSON that could not be read, and why (pydantic-settings
    names only the top-level field)."""
    cause = exc.__cause__
    if not isinstance(cause, json.JSONDecodeError):
        return None
    names = sorted(name for name, value in os.environ.items() if name.upper().startswith("KIC_") and value == cause.doc)
    if not names:
        return None
    return (
        f"{', '.join(names)}={cause.doc!r} is not valid JSON ({cause.msg}, column {cause.colno}); "
        "lists and tables are JSON, e.g. '[3, 4, 5]'"
    )


def load_settings(config: str | Path | None = None, **overrides) -> Settings:
    """Read settings now from `config` (default: `$KIC_CONFIG` or ./kic.toml, if there) and
    the environment; `overrides` win over both. Never cached."""
    path = Path(config) if config is not None else config_file()
    if (config is not None or CONFIG_ENV in os.environ) and not path.is_file():
        raise KicError(f"config file {path}: no such file")
    token = _config_path.set(path)
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise KicError(f"config file {path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        raise KicError(
            f"config file {path}: not valid TOML (not UTF-8: byte {exc.start} is {exc.object[exc.start]:#x})"
        ) from None
    except SettingsError as exc:  # e.g. a KIC_* list that is not JSON
        raise KicError(f"invalid settings: {not_json(exc) or exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            ": ".join(filter(None, [".".join(map(str, e["loc"])), e["msg"].removeprefix("Value error, ")]))
            for e in exc.errors()
        )
        raise KicError(f"invalid settings (in {path} or KIC_* variables): {problems}") from None
    finally:
        _config_path.reset(token)
