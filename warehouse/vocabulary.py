"""The warehouse's fixed vocabularies: one definition each, used by Python and checked against the SQL."""

from enum import StrEnum


class RunStatus(StrEnum):
    """raw.crawl_runs.status (its CHECK constraint lists the same values)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


# Runs whose rows may be read: an interrupted crawl keeps what it stored.
READABLE_RUNS = (RunStatus.SUCCEEDED, RunStatus.INTERRUPTED)


class AccountStatus(StrEnum):
    """raw.account_outcomes.status: what happened to one account in one crawl."""

    OK = "ok"
    PRIVATE = "private"  # profile read, posts hidden
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"  # a throttle that reached the spider: only without the quota middleware
    BLOCKED = "blocked"  # login wall or checkpoint: the crawl stops
    ERROR = "error"
    # Not reached: the shard stopped because its credential's quota would not free in time
    # (or the crawl window ended). Not a failure: planned first next night.
    DEFERRED = "deferred"


# Outcomes whose profile was read.
READ_OUTCOMES = (AccountStatus.OK, AccountStatus.PRIVATE)
# Outcomes that count as the account's failure in a night (deferred ones do not).
FAILED_OUTCOMES = (AccountStatus.NOT_FOUND, AccountStatus.RATE_LIMITED, AccountStatus.BLOCKED, AccountStatus.ERROR)


class Source(StrEnum):
    """raw.crawl_runs.source."""

    WEB = "web"
    GRAPH = "graph"
    CSV = "csv"
    SYNTHETIC = "synthetic"


CRAWL_SOURCES = (Source.WEB, Source.GRAPH)


# Features of a date take each influencer's latest observation no older than this (days).
DEFAULT_MAX_OBSERVATION_AGE_DAYS = 30


# The largest count or per-post mean stored or clustered: more than any account has (the
# largest has under 10^9 followers), exact in a float64 and far below int64's 2^63, so
# sums, ratios and squared distances of such values stay finite.
MAX_PLAUSIBLE_COUNT = 10**12
