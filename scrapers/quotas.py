"""Quotas: how many calls one credential (a Graph token; a web session or egress IP) may make
per rolling window, as this crawler counts them and as the server says (pure logic, no Scrapy).

The reference design for a source without usage headers is instaloader's RateController: a
sliding window of the calls made, and on a 429 the assumption that the window is full. The
Graph API adds what its answers say: `X-App-Usage` and `X-Business-Use-Case-Usage` (usage in
percent of the limit, and `estimated_time_to_regain_access` in minutes), and error codes for
throttling. `Budget` turns both into one question: how long until the next call may go out.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from scrapers.parsing import GRAPH_RATE_LIMIT_CODES, load_json

# The web client's answer when it throttles an IP or session (with 429, or 400/401).
WEB_THROTTLE_MESSAGE = "please wait a few minutes"
USAGE_HEADERS = ("X-App-Usage", "X-Business-Use-Case-Usage")
USAGE_KEYS = ("call_count", "total_cputime", "total_time")
# Below this usage (percent) the server's rounding to whole percents makes a poor estimate of its
# limit (at 25 % it errs by 2 % at most).
MIN_ESTIMATING_USAGE = 25


@dataclass(frozen=True)
class Quota:
    calls: int  # calls the credential may make per window
    window_seconds: float
    target_usage: float = 0.85  # the share of the limit a crawl uses: it slows down before the limit


@dataclass(frozen=True)
class Usage:
    """What one answer says of the credential's usage: percent of the limit used (the highest of
    the counters reported), and the seconds until a throttled credential is served again."""

    percent: float
    regain_seconds: float


@dataclass(frozen=True)
class Throttle:
    """A throttled answer: `stated_wait` is the server's own wait (Retry-After, or the
    estimated time to regain access), None when it names none."""

    why: str
    stated_wait: float | None


def usage_of(headers: Mapping[str, str]) -> Usage | None:
    """The usage the Graph API reports in X-App-Usage and X-Business-Use-Case-Usage, if any."""
    counters, regain = [], 0.0
    for name in USAGE_HEADERS:
        text = headers.get(name)
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        # X-App-Usage is one object; X-Business-Use-Case-Usage maps each business object to a list.
        entries = [value] if name == "X-App-Usage" else [e for v in value.values() for e in v]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            counters += [float(entry[k]) for k in USAGE_KEYS if isinstance(entry.get(k), int | float)]
            minutes = entry.get("estimated_time_to_regain_access")
            if isinstance(minutes, int | float):
                regain = max(regain, 60.0 * minutes)
    if not counters and not regain:
        return None
    return Usage(max(counters, default=0.0), regain)


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def throttle_of(status: int, headers: Mapping[str, str], body: bytes) -> Throttle | None:
    """Whether an answer is a throttle: HTTP 429, a Graph API rate-limit error code, or the web
    client's "Please wait a few minutes" answer; with the wait the server states, if any."""
    usage = usage_of(headers)
    stated = retry_after(headers.get("Retry-After"))
    if usage is not None and usage.regain_seconds > 0:
        stated = max(stated or 0.0, usage.regain_seconds)
    why = None
    if status == 429:
        why = "HTTP 429"
    if status >= 400 or why:
        try:
            payload = load_json(body)
        except ValueError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict) and error.get("code") in GRAPH_RATE_LIMIT_CODES:
            why = f"graph error {error['code']}: {error.get('message', '')}".strip()
        elif isinstance(payload, dict) and WEB_THROTTLE_MESSAGE in str(payload.get("message", "")).lower():
            why = why or f"HTTP {status}: {payload['message']}"
    return Throttle(why, stated) if why else None


class Budget:
    """One credential's calls in a rolling window, and when the next may go out.

    A call counts from the moment it is sent (in flight) until `window_seconds` after its
    answer came back: the server counted it on arrival, so this window never frees a call
    before the server's does. At most `target_usage` of the limit is used. The limit starts as
    configured and is corrected by the server: from its usage headers (the lowest estimate of
    the last window: calls sent ÷ share used, an upper bound of the true limit while calls are in
    flight), and from throttles without them (the calls it had admitted in the window, for the
    rest of the crawl). Until calls come back, the number in flight grows with the
    number answered (one, then two, four, ...), so a limit learnt from the first answers is
    not overshot by a burst sent before them.
    """

    def __init__(self, quota: Quota, clock: Callable[[], float] = time.monotonic):
        self.quota = quota
        self.clock = clock
        self.sent: deque[float] = deque()  # send times of the calls in flight, oldest first
        self.answered: deque[tuple[float, bool]] = deque()  # (answered at, admitted), oldest first
        self.estimates: deque[tuple[float, float]] = deque()  # (at, limit estimated from usage)
        self.learned: float | None = None  # the limit a throttle showed (kept: no header says better)
        self.blocked_until = 0.0
        self.throttles = 0

    # --- the state ------------------------------------------------------------------

    def expire(self, now: float) -> None:
        edge = now - self.quota.window_seconds
        while self.answered and self.answered[0][0] <= edge:
            self.answered.popleft()
        while self.estimates and self.estimates[0][0] <= edge:
            self.estimates.popleft()

    @property
    def in_flight(self) -> int:
        return len(self.sent)

    def used(self, now: float) -> int:
        """Calls counting against the window now: in flight, and answered within the window."""
        self.expire(now)
        return len(self.sent) + len(self.answered)

    def limit(self) -> float:
        """The limit as best known: configured, lowered by what the server said in the last window
        (usage headers) or ever (a throttle without them)."""
        learned = [] if self.learned is None else [self.learned]
        return min([float(self.quota.calls), *learned, *(estimate for _, estimate in self.estimates)])

    def allowance(self) -> int:
        """Calls the crawl lets count at once: the target share of the limit (at least one)."""
        return max(1, math.floor(self.limit() * self.quota.target_usage + 1e-9))

    def wait(self, now: float) -> float:
        """Seconds until a call may be sent: 0 now; math.inf while the calls that count are all in
        flight (their answers free nothing until they come back)."""
        used = self.used(now)
        blocked = max(0.0, self.blocked_until - now)
        ramp = len(self.answered) + 1  # in flight grows with answers, up to the allowance
        if used < self.allowance() and self.in_flight < ramp:
            return blocked
        if used >= self.allowance():
            # The call that must leave the window first for one more to fit.
            excess = used - self.allowance()
            if excess >= len(self.answered):
                return math.inf
            frees_at = self.answered[excess][0] + self.quota.window_seconds
            return max(blocked, frees_at - now)
        return max(blocked, math.inf if self.in_flight else 0.0)

    # --- calls ---------------------------------------------------------------------------

    def start(self, now: float) -> float:
        """A call goes out now; returns its send time (the token to end it with)."""
        self.sent.append(now)
        return now

    def end(self, sent_at: float, now: float, *, admitted: bool = True) -> None:
        """The call sent at `sent_at` was answered (or failed) now."""
        try:
            self.sent.remove(sent_at)
        except ValueError:
            return
        self.answered.append((now, admitted))

    def release(self, sent_at: float) -> None:
        """The call sent at `sent_at` never reached the server (a refused connection)."""
        with contextlib.suppress(ValueError):
            self.sent.remove(sent_at)

    def observe(self, usage: Usage, sent_at: float, now: float) -> None:
        """The server's usage, as an answer to the call sent at `sent_at` reports it."""
        if usage.percent < MIN_ESTIMATING_USAGE:
            return
        # Calls of the window sent up to this one: what the server may have counted, at most.
        counted = sum(1 for t in self.sent if t <= sent_at) + len(self.answered)
        self.estimates.append((now, counted * 100.0 / usage.percent))

    def throttled(self, throttle: Throttle, usage: Usage | None, attempt: int, backoff_base: float, now: float) -> str:
        """A throttled answer came back: wait what the server says, or learn that the window is
        full. Returns how the wait was decided."""
        self.throttles += 1
        if throttle.stated_wait is not None:
            self.blocked_until = max(self.blocked_until, now + throttle.stated_wait)
            return f"the server's stated wait ({throttle.stated_wait:.0f} s)"
        if usage is not None and usage.percent < 100:
            # Throttled, yet the window is not full by the server's own count: not this quota.
            self.blocked_until = max(self.blocked_until, now + backoff_base * 2**attempt)
            return "a backoff"
        # The window is full: what the server admitted in it is all it takes (instaloader's rule).
        self.expire(now)
        admitted = float(max(1, sum(1 for _, ok in self.answered if ok)))
        self.learned = admitted if self.learned is None else min(self.learned, admitted)
        return "the window to free a call"
