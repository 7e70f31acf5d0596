"""The nightly plan: which accounts a night crawls, within what its credentials may call.

The budget is what the night's credentials may call in its crawl window (at the target
share of each limit); the plan fills it by priority (PLAN_ORDER):

1. accounts deferred last time (their shard stopped for its quota before reaching them);
2. accounts never observed nor tried, in the order they were listed;
3. then the oldest observation (or failed attempt) first; among accounts last seen on the
   same day, those whose next observation most likely moves them: nearest a persona
   boundary of the latest snapshot, or whose ER moved most since it (`attention`).

So with a budget of a third of the watchlist every account is refreshed every three nights.
Only the last `lookback_days` of outcomes and one feature date are read: a plan costs the
same after a year of nights as after one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd

from warehouse.db import insert_frame, transaction
from warehouse.vocabulary import CRAWL_SOURCES

# Every candidate ranked (the budget then takes the first ones). $today, $since, $crawl_sources; the
# candidates come as the `candidates` frame (username, listed: their order as given).
PLAN_ORDER = """
WITH recent_crawls AS (
    SELECT crawl_id, as_of_date FROM raw.crawl_runs
    WHERE as_of_date BETWEEN $since AND $today AND list_contains($crawl_sources, source)
),
recent AS (
    SELECT o.username,
           max(c.as_of_date) FILTER (WHERE o.status <> 'deferred') AS last_tried_on,
           arg_max(o.status, o.crawl_id) = 'deferred'              AS was_deferred
    FROM raw.account_outcomes AS o
    JOIN recent_crawls AS c USING (crawl_id)
    GROUP BY o.username
),
observed AS (
    SELECT username, observed_on, er, active_rate
    FROM features.influencer_features
    WHERE feature_date = (SELECT max(feature_date) FROM features.influencer_features WHERE feature_date <= $today)
),
latest AS (SELECT max(version) AS version FROM clusters.snapshots),
centres AS (
    SELECT cluster, mean_er, mean_active_rate FROM clusters.profiles WHERE version = (SELECT version FROM latest)
),
members AS (
    SELECT a.username, a.cluster, a.er AS snapshot_er,
           coalesce(o.er, a.er) AS er, coalesce(o.active_rate, a.active_rate) AS active_rate
    FROM clusters.assignments AS a
    LEFT JOIN observed AS o USING (username)
    WHERE a.version = (SELECT version FROM latest)
),
distances AS (
    SELECT m.username, m.er, m.snapshot_er,
           min(sqrt((m.er - c.mean_er) ** 2 + (m.active_rate - c.mean_active_rate) ** 2))
               FILTER (WHERE c.cluster = m.cluster)  AS own,
           min(sqrt((m.er - c.mean_er) ** 2 + (m.active_rate - c.mean_active_rate) ** 2))
               FILTER (WHERE c.cluster <> m.cluster) AS other
    FROM members AS m CROSS JOIN centres AS c
    GROUP BY m.username, m.er, m.snapshot_er
),
-- 0..1: 1 on a boundary (as near the nearest other centre as its own), or ER moved by its
-- whole value since the snapshot.
attention AS (
    SELECT username,
           greatest(
               coalesce(1 - (other - own) / greatest(other + own, 1e-9), 0),
               least(1, abs(er - snapshot_er) / greatest(snapshot_er, 0.1))
           ) AS attention
    FROM distances
),
ranked AS (
    SELECT c.username, c.listed,
           coalesce(r.was_deferred, false)           AS was_deferred,
           o.observed_on                              AS last_observed_on,
           r.last_tried_on,
           greatest(o.observed_on, r.last_tried_on)   AS last_seen,
           coalesce(a.attention, 0)                   AS attention
    FROM candidates AS c
    LEFT JOIN recent AS r USING (username)
    LEFT JOIN observed AS o USING (username)
    LEFT JOIN attention AS a USING (username)
)
SELECT
    username,
    row_number() OVER (ORDER BY was_deferred DESC, last_seen NULLS FIRST, attention DESC, listed) AS priority,
    CASE WHEN was_deferred THEN 'deferred'
         WHEN last_seen IS NULL THEN 'never_observed'
         ELSE 'oldest_observation' END AS reason,
    last_observed_on,
    last_tried_on,
    attention
FROM ranked
ORDER BY priority
"""

# Calls per account answered, from the latest crawl of the source that recorded its calls.
LATEST_STATS = """
SELECT stats FROM raw.crawl_runs
WHERE source = ? AND stats IS NOT NULL AND status <> 'running'
ORDER BY crawl_id DESC LIMIT 1
"""

PLAN_SUMMARY = "SELECT * FROM watchlist.plans WHERE crawl_key = ?"
PLAN_REASONS = """
SELECT reason, count(*) AS accounts, min(last_observed_on) AS oldest_observed_on
FROM watchlist.planned_accounts WHERE crawl_key = ? GROUP BY reason ORDER BY min(priority)
"""

CREDENTIAL_NAMES = {"graph": ("token", "tokens"), "web": ("IP/session", "IPs/sessions")}


@dataclass(frozen=True)
class NightBudget:
    """What a night's credentials may call in its crawl window, and how many accounts that is."""

    source: str
    credentials: int
    calls_per_window: int  # per credential
    window_seconds: float
    target_usage: float
    crawl_window_hours: float
    calls_per_account: float  # measured on the source's latest crawl, else 1

    @property
    def windows(self) -> int:
        """Whole rolling windows in the crawl window (at least one: a window's calls fit in any span)."""
        return max(1, math.floor(self.crawl_window_hours * 3600 / self.window_seconds + 1e-9))

    @property
    def calls_per_credential(self) -> int:
        return max(1, math.floor(self.calls_per_window * self.target_usage + 1e-9)) * self.windows

    @property
    def calls(self) -> int:
        return self.credentials * self.calls_per_credential

    @property
    def accounts(self) -> int:
        return math.floor(self.calls / self.calls_per_account + 1e-9)

    def full_refresh_nights(self, watched: int) -> int | None:
        """Nights to observe every watched account once at this budget (None: not even one a night)."""
        return math.ceil(watched / self.accounts) if self.accounts else None

    def credentials_for_nightly(self, watched: int) -> int:
        """Credentials needed to observe every watched account every night."""
        return max(1, math.ceil(watched * self.calls_per_account / self.calls_per_credential))

    def credential_words(self, n: int) -> str:
        one, many = CREDENTIAL_NAMES.get(self.source, ("credential", "credentials"))
        return f"{n:,} {one if n == 1 else many}"

    def arithmetic(self, watched: int, planned: int) -> str:
        """The operator's arithmetic, in one line."""
        nights = self.full_refresh_nights(watched)
        every = "never (not one account a night)" if nights is None else f"every {nights:,} night(s)"
        return (
            f"{watched:,} watched; {self.calls:,} calls tonight ({self.credential_words(self.credentials)}, "
            f"{self.calls_per_account:.2f} calls an account): {planned:,} accounts planned; full refresh "
            f"{every}; {self.credential_words(self.credentials_for_nightly(watched))} for a nightly refresh"
        )


@dataclass(frozen=True)
class Plan:
    crawl_key: str  # the crawl the plan opens (raw.crawl_runs.landing_key once loaded)
    source: str
    as_of: date
    budget: NightBudget
    watched: int  # accounts the plan chose from
    accounts: pd.DataFrame  # username, priority, reason, last_observed_on, last_tried_on, attention, shard
    shards: dict[str, list[str]] = field(default_factory=dict)  # shard -> its accounts, by priority

    @property
    def usernames(self) -> list[str]:
        return self.accounts["username"].tolist()

    def arithmetic(self) -> str:
        return self.budget.arithmetic(self.watched, len(self.accounts))

    def reasons(self) -> dict[str, int]:
        return self.accounts["reason"].value_counts(sort=False).to_dict()


def calls_per_account(con: duckdb.DuckDBPyConnection, source: str) -> float | None:
    """Calls per account answered in the source's latest crawl that counted its calls (pages and
    retries included), or None when no crawl did."""
    rows = con.execute(LATEST_STATS, [source]).fetchall()
    if not rows:
        return None
    shards = json.loads(rows[0][0]) or {}
    calls = sum((s or {}).get("kic/quota/calls", 0) for s in shards.values())
    answered = sum((s or {}).get("kic/accounts_written", 0) for s in shards.values())
    return max(1.0, calls / answered) if calls and answered else None


def rank(con: duckdb.DuckDBPyConnection, usernames: list[str], today: date, lookback_days: int) -> pd.DataFrame:
    """Every candidate with its priority (1 first), why, when last observed and tried, and attention."""
    candidates = pd.DataFrame({"username": pd.Series(usernames, dtype=str), "listed": range(len(usernames))})
    con.register("candidates", candidates)
    try:
        since = today - timedelta(days=max(1, lookback_days))
        return con.execute(PLAN_ORDER, {"today": today, "since": since, "crawl_sources": list(CRAWL_SOURCES)}).df()
    finally:
        con.unregister("candidates")


def make_plan(
    con: duckdb.DuckDBPyConnection,
    crawl_key: str,
    usernames: list[str],
    today: date,
    budget: NightBudget,
    shards: list[str],
    lookback_days: int,
) -> Plan:
    """Rank the candidates, keep what the budget allows, deal them out to the shards in turn."""
    chosen = rank(con, usernames, today, lookback_days).head(budget.accounts).reset_index(drop=True)
    chosen["shard"] = [shards[i % len(shards)] for i in range(len(chosen))]
    parts = {shard: chosen.loc[chosen["shard"] == shard, "username"].tolist() for shard in shards}
    return Plan(crawl_key, budget.source, today, budget, len(usernames), chosen, parts)


def store_plan(con: duckdb.DuckDBPyConnection, plan: Plan, planned_at: datetime) -> None:
    """Record the plan and its accounts, together."""
    budget = plan.budget
    nights = budget.full_refresh_nights(plan.watched)
    head = pd.DataFrame(
        [
            {
                "crawl_key": plan.crawl_key,
                "planned_at": planned_at,
                "as_of_date": plan.as_of,
                "source": plan.source,
                "watched": plan.watched,
                "planned": len(plan.accounts),
                "shards": len(plan.shards),
                "credentials": budget.credentials,
                "calls_per_window": budget.calls_per_window,
                "window_seconds": budget.window_seconds,
                "target_usage": budget.target_usage,
                "crawl_window_hours": budget.crawl_window_hours,
                "calls_per_account": budget.calls_per_account,
                "budget_calls": budget.calls,
                "budget_accounts": budget.accounts,
                "full_refresh_nights": nights,
                "credentials_for_nightly": budget.credentials_for_nightly(plan.watched),
            }
        ]
    ).astype({"full_refresh_nights": "Int64"})
    rows = plan.accounts.assign(crawl_key=plan.crawl_key)
    with transaction(con):
        insert_frame(con, "watchlist.plans", head)
        if len(rows):
            insert_frame(con, "watchlist.planned_accounts", rows)


def plan_summary(con: duckdb.DuckDBPyConnection, crawl_key: str) -> dict | None:
    """A stored plan: its row of watchlist.plans, with `reasons` (accounts per reason) and the
    operator's arithmetic."""
    found = con.execute(PLAN_SUMMARY, [crawl_key]).df()
    if found.empty:
        return None
    row = found.iloc[0].to_dict()
    budget = NightBudget(
        row["source"],
        int(row["credentials"]),
        int(row["calls_per_window"]),
        float(row["window_seconds"]),
        float(row["target_usage"]),
        float(row["crawl_window_hours"]),
        float(row["calls_per_account"]),
    )
    row["arithmetic"] = budget.arithmetic(int(row["watched"]), int(row["planned"]))
    row["reasons"] = con.execute(PLAN_REASONS, [crawl_key]).df()
    return row
