"""Running the Scrapy spider in its own process, as `scrapy crawl` would, and reporting on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.processes import die_with_parent
from pipeline.secrets import graph_access_token
from pipeline.settings import Settings
from scrapers.extensions import ProgressLines
from warehouse import watchlist
from warehouse.db import connect
from warehouse.errors import KicError

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
       profiles_written, posts_written, message, stats
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
    outcomes: dict[str, int] = field(default_factory=dict)
    log_file: Path | None = None


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


def scrapy_command(settings: Settings, request: CrawlRequest, usernames_file: Path | None, log_file: Path) -> list[str]:
    args = ["-a", f"source={request.source}"]
    if usernames_file is not None:
        args += ["-a", f"usernames_file={usernames_file}"]
    if request.tag:
        args += ["-a", f"tag={request.tag}"]
    if request.as_of:
        args += ["-a", f"date={request.as_of.isoformat()}"]
    # Everything the spider reads from the settings object is passed on as given here,
    # so the crawl follows the caller's settings, whatever the child's environment says.
    urls = base_urls(settings, request)
    target = urls["KIC_GRAPH_BASE_URL" if request.source == "graph" else "KIC_WEB_BASE_URL"]
    scrapy_settings = {
        **urls,
        "KIC_WAREHOUSE": str(settings.warehouse),
        "KIC_LOCK_WAIT_SECONDS": str(settings.lock_wait_seconds),
        "KIC_GRAPH_USER_ID": settings.graph_user_id or "",
        "KIC_POSTS_PER_ACCOUNT": str(settings.posts_per_account),
        "KIC_TAG_MAX_PAGES": str(settings.tag_max_pages),
        "KIC_TIMEZONE": settings.timezone,
        "KIC_WEB_APP_ID": settings.web_app_id,
        "KIC_GRAPH_API_VERSION": settings.graph_api_version,
        "KIC_PROGRESS": "True",  # progress lines, and the crawl id, on stdout
        "LOG_FILE": str(log_file),
        **(SANDBOX_SCRAPY_SETTINGS if is_loopback(target) else {}),
        **request.scrapy_settings,
    }
    for name, value in scrapy_settings.items():
        args += ["-s", f"{name}={value}"]
    return [sys.executable, "-m", "scrapy", "crawl", "instagram", *args]


def crawl_env(settings: Settings, source: str) -> dict[str, str]:
    """The crawler's environment: secrets go to the child process only, never as Scrapy settings."""
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "scrapers.settings"}
    env.pop("KIC_WEB_SESSIONID", None)
    env.pop("KIC_GRAPH_ACCESS_TOKEN", None)
    if settings.web_sessionid is not None:
        env["KIC_WEB_SESSIONID"] = settings.web_sessionid.get_secret_value()
    if source == "graph":
        env["KIC_GRAPH_ACCESS_TOKEN"] = graph_access_token(settings) or ""
    return env


def run_crawl(
    settings: Settings,
    request: CrawlRequest,
    progress: Callable[[int, int], None] | None = None,
) -> CrawlSummary:
    """Run one crawl in a Scrapy subprocess; return what it stored. Its log goes to a file."""
    if request.source == "graph" and not (settings.graph_user_id and graph_access_token(settings)):
        raise KicError("source graph needs KIC_GRAPH_USER_ID and KIC_GRAPH_ACCESS_TOKEN (or a Prefect Secret block)")
    check_crawl_date(settings, request.as_of)
    settings.logs_path.mkdir(parents=True, exist_ok=True)
    log_file = settings.logs_path / f"crawl-{datetime.now().astimezone():%Y%m%d-%H%M%S-%f}.log"
    with tempfile.TemporaryDirectory() as tmp:
        usernames_file = None
        if request.usernames is not None:
            usernames_file = Path(tmp) / "usernames.txt"
            usernames_file.write_text("\n".join(request.usernames), encoding="utf-8")
        elif not request.tag:
            # Creates or upgrades the warehouse, too.
            with connect(settings.warehouse, lock_wait_seconds=settings.lock_wait_seconds) as con:
                if not watchlist.active_count(con):
                    raise KicError("the watchlist is empty: `kic accounts add NAME…`, or crawl --accounts / --tag")
        command = scrapy_command(settings, request, usernames_file, log_file)
        returncode, crawl_id, output = stream(command, crawl_env(settings, request.source), progress)
    if crawl_id is None:
        said = " | ".join(output) or last_lines(log_file)
        raise KicError(f"the crawl did not start (exit status {returncode}): {said}")
    with connect(settings.warehouse, read_only=True, lock_wait_seconds=settings.lock_wait_seconds) as con:
        row = con.execute(RUN_SUMMARY, [crawl_id]).fetchall()[0]
        outcomes = dict(con.execute(OUTCOME_COUNTS, [crawl_id]).fetchall())
    return CrawlSummary(*row, outcomes=outcomes, log_file=log_file)


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
) -> tuple[int, int | None, list[str]]:
    """Run the crawler, feeding its progress lines to `progress`.

    Returns its exit status, the crawl id it reported, and the last lines it printed besides
    progress (what it says before its log file is set up, such as a bad argument). The
    crawler dies with this process (a crawl left running alone would hold the warehouse).
    """
    other: deque[str] = deque(maxlen=5)
    crawl_id = None
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
                crawl_id = counts["crawl_id"] if counts["crawl_id"] is not None else crawl_id
                if progress is not None:
                    progress(counts["done"], counts["total"])
            elif line.strip():
                other.append(line.strip())
        return child.wait(), crawl_id, list(other)


def last_lines(log_file: Path, n: int = 3) -> str:
    if not log_file.exists():
        return "no log written"
    with log_file.open(encoding="utf-8", errors="replace") as handle:
        return " | ".join(line.strip() for line in deque(handle, maxlen=n))
