"""Crawls: planned within the night's quota budget, recorded in the landing area, run shard by
shard in Scrapy processes, loaded into raw.*."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.processes import die_with_parent
from pipeline.secrets import graph_access_token
from pipeline.settings import Settings
from pipeline.storage import open_warehouse
from scrapers.extensions import ProgressLines
from scrapers.middlewares import LOOPBACK_HOSTS
from warehouse import plans, watchlist
from warehouse.errors import KicError, os_refusal
from warehouse.landing import Landing, new_crawl_key, shard_name
from warehouse.loading import closed_crawl_keys
from warehouse.util import utcnow
from warehouse.vocabulary import RunStatus

# A server on this machine (the sandbox, a fixture server) is crawled without the politeness
# delay (scrapers/settings.py's DOWNLOAD_SLOTS, for a hand-run `scrapy crawl` too); `kic crawl`
# also lets it take more requests at once and back off briefly. The quota is never loopback's
# to skip: these settings leave KIC_*_QUOTA_* alone, and the quota middleware stays on.
SANDBOX_SCRAPY_SETTINGS = {
    "CONCURRENT_REQUESTS": "32",
    "DOWNLOAD_SLOTS": json.dumps({host: {"delay": 0, "concurrency": 32} for host in LOOPBACK_HOSTS}),
    "RETRY_BACKOFF_BASE": "0.2",
}
# How long `kic crawl` tries to reach its source before it says it cannot.
REACH_TIMEOUT_SECONDS = 5.0

RUN_SUMMARY = """
SELECT crawl_id, status, source, as_of_date, accounts_requested, accounts_ok, accounts_failed,
       profiles_written, posts_written, message, stats, landing_key, coalesce(accounts_deferred, 0)
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
    accounts_deferred: int = 0  # not reached: the shard stopped for its quota (not failures)
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


def check_crawl(settings: Settings, request: CrawlRequest, shards: int = 1) -> None:
    """Refuse, in one line, a crawl that cannot run: no credentials, a date to come."""
    token = request.source == "graph" and graph_access_token(settings, shard_name(0, shards))
    if request.source == "graph" and not (settings.graph_user_id and token):
        raise KicError("source graph needs KIC_GRAPH_USER_ID and KIC_GRAPH_ACCESS_TOKEN (or a Prefect Secret block)")
    check_crawl_date(settings, request.as_of)
    if request.tag and shards > 1:
        raise KicError("a hashtag crawl finds its accounts as it goes: it runs as one shard (crawl_shards = 1)")


def check_reachable(url: str, source: str, timeout: float = REACH_TIMEOUT_SECONDS) -> None:
    """Resolve the source's host and open a connection to it, within `timeout` seconds each."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with ThreadPoolExecutor(1) as pool:  # getaddrinfo itself has no timeout
            pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(timeout)
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:  # concurrent.futures' TimeoutError is this one
        why = f"its name did not resolve within {timeout:.0f} s"
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
    else:
        return
    what = (
        "KIC_WEB_BASE_URL (and KIC_WEB_SESSIONID)"
        if source == "web"
        else ("KIC_GRAPH_BASE_URL, KIC_GRAPH_USER_ID and KIC_GRAPH_ACCESS_TOKEN")
    )
    raise KicError(
        f"cannot reach the {source} source {url} ({why}): set {what} to a source this machine reaches, "
        "or crawl the local sandbox (`kic run`, or `kic sandbox` and point KIC_WEB_BASE_URL at it)"
    )


def night_budget(settings: Settings, source: str, shards: int, calls_per_account: float) -> plans.NightBudget:
    """What the night's credentials may call in its crawl window, by the settings' quotas."""
    quotas = settings.quotas
    calls, window = (
        (quotas.graph_calls, quotas.graph_window_seconds)
        if source == "graph"
        else (quotas.web_calls, quotas.web_window_seconds)
    )
    return plans.NightBudget(
        source,
        min(quotas.credentials or shards, shards),
        calls,
        window,
        quotas.target_usage,
        quotas.crawl_window_hours,
        calls_per_account,
    )


def plan_crawl(settings: Settings, request: CrawlRequest, shards: int = 1) -> plans.Plan:
    """Check a crawl can run (and that its source answers, within seconds), then plan it: rank its
    candidates (the watchlist, or the accounts named), keep what the night's budget allows, deal
    them out to the shards; store the plan."""
    check_crawl(settings, request, shards)
    as_of = request.as_of or settings.today()
    crawl_key = new_crawl_key(request.source, as_of)
    candidates = list(dict.fromkeys(request.usernames or []))
    # Creates or upgrades the warehouse, too: a warehouse that cannot be written is said first.
    with open_warehouse(settings) as con:
        if request.usernames is None and not request.tag:
            candidates = watchlist.active(con)
    if request.usernames is None and not request.tag and not candidates:
        raise KicError("the watchlist is empty: `kic accounts add NAME…`, or crawl --accounts / --tag")
    check_reachable(target_url(settings, request), request.source)
    with open_warehouse(settings) as con:
        per_account = plans.calls_per_account(con, request.source) or 1.0
        budget = night_budget(settings, request.source, shards, per_account)
        shard_names = [shard_name(i, shards) for i in range(shards)]
        plan = plans.make_plan(
            con, crawl_key, candidates, as_of, budget, shard_names, settings.max_observation_age_days
        )
        if candidates and plan.accounts.empty:
            raise KicError(
                f"tonight's quota budget ({budget.calls:,} calls) does not cover one account "
                f"({per_account:.1f} calls each): raise quotas.* or add credentials"
            )
        plans.store_plan(con, plan, utcnow())
    return plan


def pacing(settings: Settings, plan: plans.Plan) -> dict:
    """Each shard's quota (its credential's, shared with the shards on the same credential) and
    the crawl window's end, as every crawler of the crawl must follow them."""
    budget = plan.budget
    shards_per_credential = math.ceil(max(1, len(plan.shards)) / budget.credentials)
    return {
        "calls": max(1, budget.calls_per_window // shards_per_credential),
        "window_seconds": budget.window_seconds,
        "target_usage": budget.target_usage,
        "max_wait_seconds": settings.quotas.max_wait_seconds,
        "max_throttled": settings.quotas.max_throttled,
        "deadline": time.time() + budget.crawl_window_hours * 3600,
    }


def open_crawl(settings: Settings, request: CrawlRequest, plan: plans.Plan) -> OpenedCrawl:
    """Record the planned crawl in the landing area (its shards' accounts and pacing), before any
    crawler starts."""
    Landing(settings.landing_root).open_crawl(
        plan.crawl_key,
        request.source,
        target_url(settings, request),
        plan.as_of,
        plan.shards,
        pacing(settings, plan),
    )
    return OpenedCrawl(plan.crawl_key, list(plan.shards), len(plan.accounts))


def quota_settings(settings: Settings, source: str, pacing: dict | None) -> dict[str, str]:
    """The Scrapy settings of the quota middleware: the crawl's recorded pacing, else the settings'."""
    quotas = settings.quotas
    if pacing is None:
        calls, window = (
            (quotas.graph_calls, quotas.graph_window_seconds)
            if source == "graph"
            else (quotas.web_calls, quotas.web_window_seconds)
        )
        pacing = {
            "calls": calls,
            "window_seconds": window,
            "target_usage": quotas.target_usage,
            "max_wait_seconds": quotas.max_wait_seconds,
            "max_throttled": quotas.max_throttled,
            "deadline": 0,
        }
    prefix = f"KIC_{source.upper()}_QUOTA"
    return {
        f"{prefix}_CALLS": str(pacing["calls"]),
        f"{prefix}_WINDOW_SECONDS": str(pacing["window_seconds"]),
        "KIC_QUOTA_TARGET_USAGE": str(pacing["target_usage"]),
        "KIC_QUOTA_MAX_WAIT_SECONDS": str(pacing["max_wait_seconds"]),
        "KIC_QUOTA_MAX_THROTTLED": str(pacing["max_throttled"]),
        "KIC_QUOTA_DEADLINE": str(pacing["deadline"]),
    }


def scrapy_command(
    settings: Settings,
    request: CrawlRequest,
    crawl_key: str,
    shard: str,
    usernames_file: Path | None,
    log_file: Path,
    pacing: dict | None = None,
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
        **quota_settings(settings, request.source, pacing),
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
    # This machine reaches the source (a shard may run on another machine than the plan).
    check_reachable(target_url(settings, request), request.source)
    recorded_pacing = landing.request(crawl_key).get("pacing")
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
        command = scrapy_command(settings, request, crawl_key, shard, usernames_file, log_file, recorded_pacing)
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
    with open_warehouse(settings) as con:
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
        try:
            for line in child.stdout:
                if line.startswith(ProgressLines.PREFIX):
                    counts = json.loads(line.removeprefix(ProgressLines.PREFIX))
                    crawl_key = counts["crawl_key"] or crawl_key
                    failed = counts.get("failed") or failed
                    if progress is not None:
                        progress(counts["done"], counts["total"])
                elif line.strip():
                    other.append(line.strip())
        except KeyboardInterrupt:
            close_after_interrupt(child)
            raise
        return child.wait(), crawl_key, list(other), failed


# How long a crawler has to close after a Ctrl-C (Scrapy's graceful shutdown: the requests in
# flight end, its pipeline lands what it crawled) before it is asked again, then killed.
CLOSE_SECONDS = 30.0


def close_after_interrupt(child: subprocess.Popen) -> None:
    """Let a crawler close gracefully after a Ctrl-C, so that what it crawled lands: one that got
    the same Ctrl-C (a terminal signals the whole process group) closes by itself; one that did
    not is sent SIGINT; one still running after that is killed. A second Ctrl-C stops at once."""
    for ask in (False, True):
        try:
            if ask:
                child.send_signal(signal.SIGINT)
            child.communicate(timeout=CLOSE_SECONDS)  # reads its output, so that it never blocks on it
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:
            break
    child.kill()


def last_lines(log_file: Path, n: int = 3) -> str:
    if not log_file.exists():
        return "no log written"
    with log_file.open(encoding="utf-8", errors="replace") as handle:
        return " | ".join(line.strip() for line in deque(handle, maxlen=n))
