"""Crawls: recorded in the landing area, run shard by shard in Scrapy processes, loaded into raw.*."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.processes import die_with_parent
from pipeline.secrets import graph_access_token
from pipeline.settings import Settings
from scrapers.extensions import ProgressLines
from warehouse import watchlist
from warehouse.db import connect
from warehouse.errors import KicError, os_refusal
from warehouse.landing import Landing, closed_crawl_keys, load_crawl, new_crawl_key, remove_loaded, shard_name
from warehouse.vocabulary import RunStatus

# Crawling a server on this machine (the sandbox, a fixture server) needs no politeness;
# real sources keep settings.py's.
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
SANDBOX_SCRAPY_SETTINGS = {
    "DOWNLOAD_DELAY": "0",
    "AUTOTHROTTLE_ENABLED": "False",
    "CONCURRENT_REQUESTS": "32",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "32",
    "RETRY_BACKOFF_BASE": "0.2",
}

RUN_SUMMARY = """
SELECT crawl_id, status, source, as_of_date, accounts_requested, accounts_ok, accounts_failed,
       profiles_written, posts_written, message, stats, landing_key
FROM raw.crawl_runs WHERE crawl_id = ?
"""
OUTCOME_COUNTS = """
SELECT status, count(*) FROM raw.account_outcomes WHERE crawl_id = ? GROUP BY ALL ORDER BY 2 DESC
"""


@dataclass(frozen=True)
class CrawlSummary:
    crawl_id: int
    status: str
    source: str
    as_of_date: date
    accounts_requested: int
    accounts_ok: int
    accounts_failed: int
    profiles_written: int
    posts_written: int
    message: str | None
    stats: str | None  # Scrapy's stats of the crawl, as JSON
    crawl_key: str | None = None  # its name in the landing area
    outcomes: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # landed files the loader could not read, and why
    log_file: Path | None = None


class CrawlerDied(KicError):
    """The crawler ended without closing its shard (killed, out of memory): a retry may finish it."""

    transient = True


@dataclass(frozen=True)
class CrawlRequest:
    source: str = "web"  # web | graph
    usernames: Sequence[str] | None = None  # None: the tag's accounts, or the watchlist
    tag: str | None = None
    as_of: date | None = None  # default: today in the settings' time zone
    base_url: str | None = None  # override the source's base URL (e.g. the sandbox)
    scrapy_settings: dict[str, str] = field(default_factory=dict)


def base_urls(settings: Settings, request: CrawlRequest) -> dict[str, str]:
    """The Scrapy settings naming the servers to crawl: the request's, else the settings'."""
    urls = {"KIC_WEB_BASE_URL": settings.web_base_url, "KIC_GRAPH_BASE_URL": settings.graph_base_url}
    if request.base_url:
        urls["KIC_GRAPH_BASE_URL" if request.source == "graph" else "KIC_WEB_BASE_URL"] = request.base_url
    return urls


def is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in LOOPBACK_HOSTS


@dataclass(frozen=True)
class OpenedCrawl:
    """A crawl recorded in the landing area, before any crawler starts."""

    crawl_key: str
    shards: list[str]
    accounts: int


@dataclass(frozen=True)
class ShardRun:
    """One crawler process's part of a crawl, as it ended."""

    crawl_key: str
    shard: str
    accounts: int
    status: str  # the shard's own end: succeeded | interrupted
    message: str | None
    log_file: Path | None


def target_url(settings: Settings, request: CrawlRequest) -> str:
    urls = base_urls(settings, request)
    return urls["KIC_GRAPH_BASE_URL" if request.source == "graph" else "KIC_WEB_BASE_URL"]


def open_crawl(settings: Settings, request: CrawlRequest, shards: int = 1) -> OpenedCrawl:
    """Check a crawl can run, pick its accounts (the watchlist by default), split them into shards
    and record the request in the landing area."""
    token = request.source == "graph" and graph_access_token(settings, shard_name(0, shards))
    if request.source == "graph" and not (settings.graph_user_id and token):
        raise KicError("source graph needs KIC_GRAPH_USER_ID and KIC_GRAPH_ACCESS_TOKEN (or a Prefect Secret block)")
    check_crawl_date(settings, request.as_of)
    if request.tag and shards > 1:
        raise KicError("a hashtag crawl finds its accounts as it goes: it runs as one shard (crawl_shards = 1)")
    usernames = list(request.usernames or [])
    if request.usernames is None and not request.tag:
        # Creates or upgrades the warehouse, too; held only to read the watchlist.
        with connect(settings.warehouse, lock_wait_seconds=settings.lock_wait_seconds) as con:
            usernames = watchlist.active(con)
        if not usernames:
            raise KicError("the watchlist is empty: `kic accounts add NAME…`, or crawl --accounts / --tag")
    as_of = request.as_of or settings.today()
    crawl_key = new_crawl_key(request.source, as_of)
    parts = {shard_name(i, shards): usernames[i::shards] for i in range(shards)}
    Landing(settings.landing_root).open_crawl(crawl_key, request.source, target_url(settings, request), as_of, parts)
    return OpenedCrawl(crawl_key, list(parts), len(usernames))


def scrapy_command(
    settings: Settings, request: CrawlRequest, crawl_key: str, shard: str, usernames_file: Path | None, log_file: Path
) -> list[str]:
    args = ["-a", f"source={request.source}"]
    if usernames_file is not None:
        args += ["-a", f"usernames_file={usernames_file}"]
    if request.tag:
        args += ["-a", f"tag={request.tag}"]
    if request.as_of:
        args += ["-a", f"date={request.as_of.isoformat()}"]
    # Everything the spider reads from the settings object is passed on as given here,
    # so the crawl follows the caller's settings, whatever the child's environment says.
    target = target_url(settings, request)
    scrapy_settings = {
        **base_urls(settings, request),
        "KIC_LANDING_URL": settings.landing_root,
        "KIC_CRAWL_KEY": crawl_key,
        "KIC_SHARD": shard,
        "KIC_GRAPH_USER_ID": settings.graph_user_id or "",
        "KIC_POSTS_PER_ACCOUNT": str(settings.posts_per_account),
        "KIC_TAG_MAX_PAGES": str(settings.tag_max_pages),
        "KIC_TIMEZONE": settings.timezone,
        "KIC_WEB_APP_ID": settings.web_app_id,
        "KIC_GRAPH_API_VERSION": settings.graph_api_version,
        "KIC_PROGRESS": "True",  # progress lines, and the crawl key, on stdout
        "LOG_FILE": str(log_file),
        **(SANDBOX_SCRAPY_SETTINGS if is_loopback(target) else {}),
        **request.scrapy_settings,
    }
    for name, value in scrapy_settings.items():
        args += ["-s", f"{name}={value}"]
    return [sys.executable, "-m", "scrapy", "crawl", "instagram", *args]


def crawl_env(settings: Settings, source: str, shard: str | None = None) -> dict[str, str]:
    """The crawler's environment: secrets go to the child process only, never as Scrapy settings."""
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "scrapers.settings"}
    env.pop("KIC_WEB_SESSIONID", None)
    env.pop("KIC_GRAPH_ACCESS_TOKEN", None)
    if settings.web_sessionid is not None:
        env["KIC_WEB_SESSIONID"] = settings.web_sessionid.get_secret_value()
    if source == "graph":
        env["KIC_GRAPH_ACCESS_TOKEN"] = graph_access_token(settings, shard) or ""
    return env


def run_shard(
    settings: Settings,
    request: CrawlRequest,
    crawl_key: str,
    shard: str,
    progress: Callable[[int, int], None] | None = None,
) -> ShardRun:
    """Crawl one shard of a recorded crawl in a Scrapy subprocess, landing what it fetches.

    A shard run again (a retry) crawls only the accounts its earlier attempts did not land.
    """
    landing = Landing(settings.landing_root)
    usernames = landing.unanswered(crawl_key, shard)
    if not usernames and not request.tag:
        landing.close_shard(crawl_key, shard, RunStatus.SUCCEEDED, None, {"kic/accounts_written": 0})
        return ShardRun(crawl_key, shard, 0, RunStatus.SUCCEEDED, None, None)
    try:
        settings.logs_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KicError(f"cannot create the log folder {settings.logs_path}: {exc.strerror}") from None
    log_file = settings.logs_path / f"crawl-{crawl_key}-{shard}-{datetime.now().astimezone():%H%M%S-%f}.log"
    with tempfile.TemporaryDirectory() as tmp:
        usernames_file = None
        if usernames:
            usernames_file = Path(tmp) / "usernames.txt"
            usernames_file.write_text("\n".join(usernames), encoding="utf-8")
        command = scrapy_command(settings, request, crawl_key, shard, usernames_file, log_file)
        returncode, reported, output, failed = stream(command, crawl_env(settings, request.source, shard), progress)
    if failed is not None:  # the landing area refused a write: a retry would fail the same way
        raise os_refusal(failed["errno"], failed["file"], failed["reason"]) or KicError(
            f"crawl {crawl_key} {shard}: landing in {failed['file']} failed ({failed['reason']}); "
            f"what it landed before is kept (log: {log_file})"
        )
    if reported is None:
        said = " | ".join(output) or last_lines(log_file)
        raise KicError(f"the crawl did not start (exit status {returncode}): {said}")
    end = landing.closed(crawl_key, shard)
    if end is None:
        raise CrawlerDied(
            f"crawl {crawl_key} {shard}: the crawler exited (status {returncode}) before closing; "
            f"what it landed is kept and a retry crawls the rest (log: {log_file})"
        )
    return ShardRun(crawl_key, shard, len(usernames), end["status"], end["message"], log_file)


def load(settings: Settings, crawl_key: str, close: bool = True) -> CrawlSummary:
    """Move a crawl's landed files into raw.* in one transaction, then summarize the run."""
    landing = Landing(settings.landing_root)
    with connect(settings.warehouse, lock_wait_seconds=settings.lock_wait_seconds) as con:
        report = load_crawl(con, landing, crawl_key, close=close)
        summary = summarize(con, report.crawl_id)
        remove_loaded(con, landing, settings.landing_retention_days)
    return replace(summary, refused=report.refused)


def summarize(con, crawl_id: int) -> CrawlSummary:
    row = con.execute(RUN_SUMMARY, [crawl_id]).fetchall()[0]
    outcomes = dict(con.execute(OUTCOME_COUNTS, [crawl_id]).fetchall())
    return CrawlSummary(*row, outcomes=outcomes)


def unloaded_crawls(settings: Settings) -> tuple[list[str], list[str]]:
    """Crawls in the landing area not loaded yet: (every shard closed or abandoned, still running)."""
    landing = Landing(settings.landing_root)
    keys = landing.crawl_keys()
    if not keys:
        return [], []
    with connect(settings.warehouse, lock_wait_seconds=settings.lock_wait_seconds) as con:
        done = set(closed_crawl_keys(con, keys))
    waiting = [k for k in keys if k not in done]
    # A shard whose crawler died (kill -9, a crash) never closes: it is loaded and closed as interrupted.
    finished = [
        k for k in waiting if all(landing.closed(k, s) or landing.abandoned(k, s) for s in landing.request(k)["shards"])
    ]
    return finished, [k for k in waiting if k not in finished]


def check_crawl_date(settings: Settings, day: date | None) -> None:
    """A crawl describes a day that has come: refuse a date after today."""
    today = settings.today()
    if day is not None and day > today:
        raise KicError(
            f"date {day} is after today ({today} in {settings.timezone}): a crawl describes a day "
            "that has come, and what it fetches now would look like posts from the future"
        )


def stream(
    command: list[str], env: dict, progress: Callable[[int, int], None] | None
) -> tuple[int, str | None, list[str], dict | None]:
    """Run the crawler, feeding its progress lines to `progress`.

    Returns its exit status, the crawl key it reported, the last lines it printed besides
    progress (what it says before its log file is set up, such as a bad argument), and why
    landing failed, if it did. The crawler dies with this process (no crawler is left running
    alone).
    """
    other: deque[str] = deque(maxlen=5)
    crawl_key = failed = None
    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,
    ) as child:
        for line in child.stdout:
            if line.startswith(ProgressLines.PREFIX):
                counts = json.loads(line.removeprefix(ProgressLines.PREFIX))
                crawl_key = counts["crawl_key"] or crawl_key
                failed = counts.get("failed") or failed
                if progress is not None:
                    progress(counts["done"], counts["total"])
            elif line.strip():
                other.append(line.strip())
        return child.wait(), crawl_key, list(other), failed


def last_lines(log_file: Path, n: int = 3) -> str:
    if not log_file.exists():
        return "no log written"
    with log_file.open(encoding="utf-8", errors="replace") as handle:
        return " | ".join(line.strip() for line in deque(handle, maxlen=n))
