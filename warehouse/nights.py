"""What a night did, read back from the warehouse: its plan, every account's outcome by reason
(with a few example accounts), its validations and its features; and whether it failed.

Read from what is stored, so that a night that failed halfway is described as truly as one
that finished: whatever was loaded and validated is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb
import pandas as pd

from warehouse import plans
from warehouse.vocabulary import FAILED_OUTCOMES, READ_OUTCOMES, AccountStatus

EXAMPLES = 3  # example accounts per reason
TOP_REASONS = 20  # reasons listed (by accounts); the rest are counted under their status

CRAWL = """
SELECT crawl_id, status, as_of_date, accounts_requested, message, started_at
FROM raw.crawl_runs WHERE landing_key = ?
"""
STATUSES = "SELECT status, count(*) FROM raw.account_outcomes WHERE crawl_id = ? GROUP BY status ORDER BY 2 DESC"
REASONS = f"""
SELECT status, coalesce(reason, '') AS reason, count(*) AS accounts,
       list(username ORDER BY username)[1:{EXAMPLES}] AS examples
FROM raw.account_outcomes WHERE crawl_id = ?
GROUP BY ALL ORDER BY accounts DESC, status, reason LIMIT {TOP_REASONS}
"""
# The night's validations: its crawl's suites, then the features of its date derived since.
VALIDATIONS = """
SELECT validation_id, suite, rows_validated, passed, failed, rows_quarantined, table_level_ok
FROM quality.validation_runs
WHERE crawl_id = $crawl_id OR (crawl_id IS NULL AND feature_date = $as_of AND run_at >= $since)
ORDER BY run_at, suite
"""
FAILED_EXPECTATIONS = """
SELECT v.suite, e.expectation, e.level, e.unexpected_count, e.observed_value
FROM quality.expectation_results AS e JOIN quality.validation_runs AS v USING (validation_id)
WHERE NOT e.success AND list_contains($ids, v.validation_id)
ORDER BY v.run_at, v.suite, e.expectation
"""
FEATURES = """
SELECT count(*) AS influencers,
       count(*) FILTER (WHERE is_clusterable) AS clusterable,
       count(*) FILTER (WHERE not_clusterable_reason = 'stale') AS stale,
       median(feature_date - observed_on) AS median_age_days,
       quantile_disc(feature_date - observed_on, 0.95) AS p95_age_days,
       avg(CASE WHEN feature_date - observed_on > 7 THEN 1.0 ELSE 0.0 END) AS older_than_7_days
FROM features.influencer_features
WHERE feature_date = $as_of AND computed_at >= $since
"""


@dataclass(frozen=True)
class NightReview:
    crawl_key: str
    crawl_id: int | None  # None: nothing of the crawl was loaded
    status: str | None
    as_of: date | None
    message: str | None
    plan: dict | None  # warehouse.plans.plan_summary
    counts: dict[str, int] = field(default_factory=dict)  # accounts per outcome
    reasons: pd.DataFrame = field(default_factory=pd.DataFrame)  # status, reason, accounts, examples
    validations: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed_expectations: pd.DataFrame = field(default_factory=pd.DataFrame)
    features: dict | None = None  # the date's features derived tonight, with observation ages

    @property
    def planned(self) -> int:
        if self.plan is not None:
            return int(self.plan["planned"])
        return sum(self.counts.values())

    @property
    def deferred(self) -> int:
        return self.counts.get(AccountStatus.DEFERRED, 0)

    @property
    def failed(self) -> int:
        return sum(self.counts.get(s, 0) for s in FAILED_OUTCOMES)

    @property
    def read(self) -> int:
        return sum(self.counts.get(s, 0) for s in READ_OUTCOMES)

    @property
    def reached(self) -> int:
        """Accounts the crawl answered for, deferred ones left out."""
        return sum(self.counts.values()) - self.deferred


def review_night(con: duckdb.DuckDBPyConnection, crawl_key: str) -> NightReview:
    """Everything stored about the night that opened `crawl_key`."""
    plan = plans.plan_summary(con, crawl_key)
    found = con.execute(CRAWL, [crawl_key]).fetchall()
    if not found:
        return NightReview(crawl_key, None, None, plan["as_of_date"] if plan else None, None, plan)
    crawl_id, status, as_of, _, message, started_at = found[0]
    validations = con.execute(VALIDATIONS, {"crawl_id": crawl_id, "as_of": as_of, "since": started_at}).df()
    failed = con.execute(FAILED_EXPECTATIONS, {"ids": validations["validation_id"].tolist()}).df()
    features = con.execute(FEATURES, {"as_of": as_of, "since": started_at}).df().iloc[0].to_dict()
    return NightReview(
        crawl_key,
        crawl_id,
        status,
        as_of,
        message,
        plan,
        dict(con.execute(STATUSES, [crawl_id]).fetchall()),
        con.execute(REASONS, [crawl_id]).df(),
        validations,
        failed,
        features if features["influencers"] else None,
    )


def top_reasons(review: NightReview, statuses) -> str:
    """`not_found 150 (data.user is null); error 3 (...)`: each status's accounts, and its commonest reason."""
    parts = []
    for status, n in sorted(review.counts.items(), key=lambda item: -item[1]):
        if status not in statuses:
            continue
        rows = review.reasons[review.reasons["status"] == status] if len(review.reasons) else review.reasons
        reason = rows.iloc[0]["reason"] if len(rows) else ""
        parts.append(f"{status} {n:,}" + (f" ({reason[:80]})" if reason else ""))
    return "; ".join(parts)


def judge_night(review: NightReview, max_failure_share: float) -> str | None:
    """Why the night failed, in one line, or None: nothing read, or more than `max_failure_share`
    of the accounts it reached failed (deferred accounts are neither failures nor reached)."""
    if review.crawl_id is None:
        return f"nothing was crawled: crawl {review.crawl_key} stored nothing ({review.planned:,} accounts planned)"
    deferred = f"; {review.deferred:,} deferred" if review.deferred else ""
    if review.read == 0:
        why = top_reasons(review, [*FAILED_OUTCOMES, AccountStatus.DEFERRED])
        return f"nothing was crawled: 0 of {review.planned:,} planned accounts read" + (f": {why}" if why else "")
    if review.reached and review.failed / review.reached > max_failure_share:
        return (
            f"{review.failed:,} of {review.reached:,} accounts failed (more than {max_failure_share:.0%}): "
            f"{top_reasons(review, FAILED_OUTCOMES)}{deferred}"
        )
    return None
