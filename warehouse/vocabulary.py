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
    RATE_LIMITED = "rate_limited"
    BLOCKED = "blocked"  # login wall or checkpoint: the crawl stops
    ERROR = "error"


# Outcomes whose profile was read.
READ_OUTCOMES = (AccountStatus.OK, AccountStatus.PRIVATE)


class Source(StrEnum):
    """raw.crawl_runs.source."""

    WEB = "web"
    GRAPH = "graph"
    CSV = "csv"
    SYNTHETIC = "synthetic"


CRAWL_SOURCES = (Source.WEB, Source.GRAPH)


# The largest count or per-post mean stored or clustered: more than any account has (the
# largest has under 10^9 followers), exact in a float64 and far below int64's 2^63, so
# sums, ratios and squared distances of such values stay finite.
MAX_PLAUSIBLE_COUNT = 10**12
