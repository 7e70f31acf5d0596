"""Downloader middlewares: pacing by the credentials' quotas, retries that back off, and no
politeness delay for a server on this machine."""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.defer import _schedule_coro
from scrapy.utils.response import response_status_message
from twisted.internet.error import ConnectionRefusedError, DNSLookupError

from scrapers.quotas import USAGE_HEADERS, Budget, Quota, throttle_of, usage_of
from warehouse.util import utcnow
from warehouse.vocabulary import CRAWL_SOURCES

# Failures of a call that never reached the server: it does not count against the quota.
NOT_SENT = (DNSLookupError, ConnectionRefusedError)


def retry_after_seconds(value: bytes | None) -> float | None:
    """Retry-After as seconds: a delay in seconds or an HTTP date."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(text) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's RetryMiddleware, waiting before each retry of a 429 or 5xx answer.

    The wait is the answer's Retry-After if it has one, else exponential backoff
    (RETRY_BACKOFF_BASE * 2 ** retries, with jitter), never more than RETRY_BACKOFF_MAX.
    """

    def __init__(self, settings):
        super().__init__(settings)
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX", 60.0)

    def backoff(self, retries: int, response) -> float:
        hinted = retry_after_seconds(response.headers.get(b"Retry-After"))
        if hinted is None:
            hinted = self.backoff_base * 2**retries * random.uniform(0.5, 1.0)
        return min(hinted, self.backoff_max)

    async def process_response(self, request, response, spider=None):
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        retries = request.meta.get("retry_times", 0)
        if retries < request.meta.get("max_retry_times", self.max_retry_times):
            delay = self.backoff(retries, response)
            self.crawler.stats.inc_value("retry/backoff_seconds", delay)
            await asyncio.sleep(delay)
        return self._retry(request, response_status_message(response.status)) or response


# A server on this machine (the sandbox, a fixture server): no one to be polite to.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class LocalTargetMiddleware:
    """Lets AutoThrottle leave the delay of a loopback server's download slot alone, so that its
    slot keeps settings.DOWNLOAD_SLOTS' zero delay (AutoThrottle would raise it to DOWNLOAD_DELAY).
    The quota still applies: QuotaMiddleware paces every request, loopback or not."""

    def process_request(self, request, spider=None):
        if urlsplit(request.url).hostname in LOOPBACK_HOSTS:
            request.meta.setdefault("autothrottle_dont_adjust_delay", True)


class QuotaExhausted(IgnoreRequest):
    """The credential's quota will not free within the bound: the shard stops, and the accounts
    it did not reach are deferred to the next night."""


class QuotaMiddleware:
    """Paces every request by its credential's quota (see scrapers.quotas.Budget).

    One budget per credential: the Graph token (per server) for source graph, the egress IP and
    session (per server) for source web. A request waits here until its budget has room, and
    counts from then on, in flight included, so that no concurrency setting can overshoot. A
    throttled answer never reaches the spider: it is retried after the server's stated wait
    (or, with none, once the window frees a call), and the budget learns from it. When the wait
    would exceed KIC_QUOTA_MAX_WAIT_SECONDS or pass KIC_QUOTA_DEADLINE (the crawl window's end),
    or a request is throttled more than KIC_QUOTA_MAX_THROTTLED times, the shard stops cleanly.

    Always on, whatever the target: a server on this machine may skip the politeness delay,
    never the quota.
    """

    POLL_SECONDS = 0.02  # how often a request waiting on answers in flight looks again
    LONGEST_NAP = 1.0  # a long wait is slept in naps, so that a stop elsewhere is seen

    def __init__(self, crawler, quotas: dict[str, Quota], max_wait: float, deadline: float | None, max_throttled: int):
        self.crawler = crawler
        self.quotas = quotas  # per source
        self.max_wait = max_wait
        # The deadline comes as wall-clock epoch seconds; the budgets count in monotonic time.
        self.deadline = None if deadline is None else time.monotonic() + (deadline - time.time())
        self.max_throttled = max_throttled
        self.backoff_base = crawler.settings.getfloat("RETRY_BACKOFF_BASE", 1.0)
        self.budgets: dict[str, Budget] = {}
        self.clock = time.monotonic

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        quotas = {
            source: Quota(
                settings.getint(f"KIC_{source.upper()}_QUOTA_CALLS"),
                settings.getfloat(f"KIC_{source.upper()}_QUOTA_WINDOW_SECONDS"),
                settings.getfloat("KIC_QUOTA_TARGET_USAGE"),
            )
            for source in CRAWL_SOURCES
        }
        deadline = settings.getfloat("KIC_QUOTA_DEADLINE") or None
        middleware = cls(
            crawler,
            quotas,
            settings.getfloat("KIC_QUOTA_MAX_WAIT_SECONDS"),
            deadline,
            settings.getint("KIC_QUOTA_MAX_THROTTLED"),
        )
        return middleware

    # --- which budget ------------------------------------------------------------------

    def credential(self, request) -> tuple[str, str]:
        """(source, the credential's name): never the secret itself, which Scrapy would log."""
        source = getattr(self.crawler.spider, "source", "web")
        server = urlsplit(request.url).netloc
        if source == "graph":
            token = request.headers.get(b"Authorization") or b""
            return source, f"graph token {hashlib.sha256(token).hexdigest()[:8]} at {server}"
        session = request.cookies.get("sessionid") if isinstance(request.cookies, dict) else None
        who = f"session {hashlib.sha256(session.encode()).hexdigest()[:8]}" if session else "this IP"
        return source, f"web {who} at {server}"

    def budget(self, request) -> tuple[str, Budget]:
        source, name = self.credential(request)
        if name not in self.budgets:
            self.budgets[name] = Budget(self.quotas[source], self.clock)
        return name, self.budgets[name]

    # --- the middleware ----------------------------------------------------------------

    async def process_request(self, request):
        name, budget = self.budget(request)
        while True:
            now = self.clock()
            wait = budget.wait(now)
            if wait <= 0:
                break
            if getattr(self.crawler.spider, "quota_stop", None):
                raise QuotaExhausted(self.crawler.spider.quota_stop)
            if wait != math.inf:
                if wait > self.max_wait:
                    self.stop(
                        f"{name}: the quota frees in {wait:.0f} s, more than the {self.max_wait:.0f} s a shard waits"
                    )
                if self.deadline is not None and now + wait > self.deadline:
                    self.stop(f"{name}: the quota frees after the crawl window ends")
            nap = self.POLL_SECONDS if wait == math.inf else min(wait, self.LONGEST_NAP)
            await asyncio.sleep(nap)
            self.crawler.stats.inc_value("kic/quota/request_wait_seconds", nap)  # summed over requests
        request.meta["kic_quota_sent_at"] = budget.start(now)
        self.crawler.stats.inc_value("kic/quota/calls")
        return None

    async def process_response(self, request, response):
        sent_at = request.meta.pop("kic_quota_sent_at", None)
        if sent_at is None:
            return response
        name, budget = self.budget(request)
        now = self.clock()
        headers = {h: (response.headers.get(h) or b"").decode("latin-1") for h in (*USAGE_HEADERS, "Retry-After")}
        throttle = throttle_of(response.status, headers, response.body)
        budget.end(sent_at, now, admitted=throttle is None)
        usage = usage_of(headers)
        if usage is not None:
            budget.observe(usage, sent_at, now)
            self.crawler.stats.max_value("kic/quota/usage_percent", usage.percent)
        self.crawler.stats.min_value("kic/quota/limit", round(budget.limit(), 1))  # the lowest it paced by
        if throttle is None:
            return response
        attempt = request.meta.get("kic_throttled", 0)
        self.crawler.stats.inc_value("kic/quota/throttled")
        if attempt >= self.max_throttled:
            self.stop(f"{name}: still throttled after {attempt} waits ({throttle.why})")
        how = budget.throttled(throttle, usage, attempt, self.backoff_base, now)
        self.crawler.spider.logger.info("throttled (%s) on %s: retried after %s", throttle.why, request.url, how)
        return request.replace(
            dont_filter=True, priority=request.priority + 1, meta={**request.meta, "kic_throttled": attempt + 1}
        )

    def process_exception(self, request, exception):
        sent_at = request.meta.pop("kic_quota_sent_at", None)
        if sent_at is not None:
            _, budget = self.budget(request)
            if isinstance(exception, NOT_SENT):
                budget.release(sent_at)  # it never reached the server
            else:
                budget.end(sent_at, self.clock())  # a timeout, a reset: the server may have counted it
        return None

    def stop(self, why: str):
        """Stop the shard: the accounts not reached yet are deferred (see the landing pipeline)."""
        spider = self.crawler.spider
        if not getattr(spider, "quota_stop", None):
            spider.quota_stop = why
            spider.close_reason = f"quota: {why}"
            self.crawler.stats.set_value("kic/quota/stopped", why)
            spider.logger.warning("stopping the shard, the rest deferred: %s", why)
            _schedule_coro(self.crawler.engine.close_spider_async(reason="quota"))
        raise QuotaExhausted(why)
