"""The sandbox's quotas: calls admitted per key (a token, a client IP) per rolling window.

The server side of what the crawler's scrapers.quotas.Budget paces against. The clock can be
replaced, so that a benchmark can run days of calls against the same rules in seconds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Admission:
    admitted: bool
    used: int  # calls admitted in the window, this one included
    percent: int  # of the limit, as the Graph API reports it (an integer)
    regain_seconds: float  # until one more call would be admitted (0: now)

    @property
    def regain_minutes(self) -> int:
        """estimated_time_to_regain_access, which the Graph API gives in whole minutes."""
        return math.ceil(self.regain_seconds / 60) if self.regain_seconds > 0 else 0


class RollingQuota:
    """At most `calls` admitted per key in any `window_seconds`; a throttled call is not counted."""

    def __init__(self, calls: int, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.calls = calls
        self.window_seconds = window_seconds
        self.clock = clock
        self.started = clock()
        self.admitted: dict[str, deque[float]] = defaultdict(deque)
        self.admitted_total: dict[str, int] = defaultdict(int)
        self.throttled: dict[str, list[float]] = defaultdict(list)  # when, in seconds since started
        self.lock = threading.Lock()

    def admit(self, key: str) -> Admission:
        now = self.clock()
        with self.lock:
            calls = self.admitted[key]
            while calls and calls[0] <= now - self.window_seconds:
                calls.popleft()
            admitted = len(calls) < self.calls
            if admitted:
                calls.append(now)
                self.admitted_total[key] += 1
            else:
                self.throttled[key].append(now - self.started)
            used = len(calls)
            full = used >= self.calls
            regain = max(0.0, calls[0] + self.window_seconds - now) if full and calls else 0.0
        return Admission(admitted, used, int(100 * used / self.calls + 0.5), regain)

    def report(self) -> dict:
        """Per key: calls admitted (in all, and in the window now) and throttled, with when."""
        with self.lock:
            return {
                key: {
                    "admitted": self.admitted_total[key],
                    "in_window": len(self.admitted[key]),
                    "throttled": len(self.throttled[key]),
                    "throttled_at_seconds": list(self.throttled[key]),
                }
                for key in sorted(set(self.admitted) | set(self.throttled))
            }
