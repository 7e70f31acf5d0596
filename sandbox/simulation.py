"""A crawl shard on a virtual clock: the crawler's pacing (scrapers.quotas.Budget) against the
sandbox's quota (sandbox.quotas.RollingQuota), the same code the real crawl and the sandbox
run, with time advanced from event to event instead of waited. Hours of calls take
milliseconds, for tests and benchmarks/refresh_plan.py.

Model: `concurrency` calls at most in flight (Scrapy's per-domain concurrency); a call is
admitted or throttled by the server as it is sent and answered `latency` seconds later
(politeness delay included); the answer carries the Graph usage headers when `headers`; a
throttled call is retried after the budget's wait, as the quota middleware does.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.quotas import Admission, RollingQuota
from sandbox.server import graph_usage_headers
from scrapers.quotas import Budget, Quota, Throttle, usage_of


class VirtualClock:
    def __init__(self, start: float = 0.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class ShardRun:
    answered: int = 0  # calls answered and admitted
    throttled: int = 0
    throttled_at: list[float] = field(default_factory=list)  # clock times of throttled calls
    deferred: int = 0  # calls never made: the wait would pass `until` or exceed max_wait
    ended_at: float = 0.0


def run_shard(
    calls: int,
    quota: Quota,
    server: RollingQuota,
    clock: VirtualClock,
    *,
    concurrency: int = 2,
    latency: float | Callable[[], float] = 1.0,
    headers: bool = True,
    until: float = math.inf,
    max_wait: float = math.inf,
    max_throttled: int = 5,
    key: str = "token",
    budget: Budget | None = None,
) -> ShardRun:
    """Make `calls` calls through one credential's budget, from clock.now; stop (the rest deferred)
    when a wait would pass `until` or exceed `max_wait`, or a call is throttled `max_throttled` times."""
    budget = budget or Budget(quota, clock)
    answer_in = latency if callable(latency) else lambda: latency
    run = ShardRun()
    pending: list[tuple[float, int, float, Admission, int]] = []  # (answer at, seq, sent at, admission, attempt)
    retries: list[int] = []  # attempts of throttled calls to make again, first
    left, seq = calls, 0
    while left or retries or pending:
        # Send what the budget allows now.
        wait = math.inf
        while (left or retries) and len(pending) < concurrency:
            wait = budget.wait(clock.now)
            if wait > 0:
                break
            attempt = retries.pop(0) if retries else 0
            if not attempt:
                left -= 1
            sent = budget.start(clock.now)
            seq += 1
            heapq.heappush(pending, (clock.now + answer_in(), seq, sent, server.admit(key), attempt))
            wait = math.inf
        could_send = bool(left or retries) and len(pending) < concurrency
        if could_send and wait != math.inf and (wait > max_wait or clock.now + wait > until):
            run.deferred, left, retries = left + len(retries), 0, []
            continue
        # Advance to the next event: an answer, or the moment the budget frees.
        next_send = clock.now + wait if could_send and wait != math.inf else math.inf
        if not pending and next_send == math.inf:
            raise RuntimeError("the budget waits for answers while none is in flight")
        if pending and pending[0][0] <= next_send:
            clock.now, _, sent, admission, attempt = heapq.heappop(pending)
            usage = usage_of(graph_usage_headers(admission, "1")) if headers else None
            budget.end(sent, clock.now, admitted=admission.admitted)
            if usage is not None:
                budget.observe(usage, sent, clock.now)
            if admission.admitted:
                run.answered += 1
            else:
                run.throttled += 1
                run.throttled_at.append(clock.now)
                if attempt >= max_throttled:
                    run.deferred, left, retries = left + len(retries) + 1, 0, []
                    continue
                stated = usage.regain_seconds if usage is not None and usage.regain_seconds else None
                budget.throttled(Throttle("simulated", stated), usage, attempt, 1.0, clock.now)
                retries.append(attempt + 1)
        else:
            clock.now = next_send
    run.ended_at = clock.now
    return run
