"""Refresh planning at the Graph API's documented limits: a 100,000-account watchlist crawled with
1, 5 and 20 tokens for 30 simulated days.

    uv run python benchmarks/refresh_plan.py [--accounts 100000] [--days 30] [--tokens 1 5 20]

How time is simulated: every night the real plan (warehouse.plans: its SQL on a real DuckDB
warehouse holding the watchlist, the recent outcomes and the latest features) picks the night's
accounts within the budget (tokens x 200 calls an hour x 85 % target x the 20-hour crawl window,
one call an account: Business Discovery with media.limit(12) answers in one page); then each
token's shard runs on a virtual clock (sandbox.simulation.run_shard: the crawler's Budget, the
one the quota middleware uses, against the sandbox's RollingQuota of 200 calls per rolling hour
with the Graph usage headers), two calls in flight, each answered 1-3 s after it is sent
(network and politeness delay, seeded). The clock advances from event to event, so a 20-hour
crawl takes a fraction of a second; nights start 24 hours apart. 2 % of the accounts do not
exist (not_found every time they are tried). What each night read is written back (outcomes,
and a feature date with each account's latest observation) before the next plan.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.storage import connect
from sandbox.quotas import RollingQuota
from sandbox.simulation import VirtualClock, run_shard
from scrapers.quotas import Quota
from warehouse import plans
from warehouse.db import insert_frame
from warehouse.landing import shard_name

FIRST_NIGHT = date(2026, 6, 1)
GRAPH_CALLS, GRAPH_WINDOW = 200, 3600.0  # Graph API Platform Rate Limits: 200 calls per user per hour
TARGET_USAGE = 0.85
CRAWL_WINDOW_HOURS = 20.0
MISSING_SHARE = 0.02

# Each account's latest observation after the night: the feature date the next plan reads.
FEATURES_OF_THE_NIGHT = """
INSERT INTO features.influencer_features
    (username, feature_date, crawl_id, source, open_account, official_account, is_clusterable,
     not_clusterable_reason, computed_at, observed_on)
SELECT username, $day, crawl_id, 'graph', true, false, false, 'no_readable_posts', now(), observed_on
FROM bench.latest
"""
UPDATE_LATEST = """
INSERT OR REPLACE INTO bench.latest
SELECT username, $crawl_id, $day FROM night WHERE status = 'ok'
"""
AGES = """
SELECT median($day - observed_on), quantile_disc($day - observed_on, 0.95), count(*)
FROM bench.latest
"""


def simulate(n_accounts: int, tokens: int, days: int, seed: int, folder: Path) -> dict:
    rng = random.Random(seed)
    usernames = [f"beauty_{i:07d}" for i in range(n_accounts)]
    missing = set(rng.sample(usernames, int(n_accounts * MISSING_SHARE)))
    budget = plans.NightBudget("graph", tokens, GRAPH_CALLS, GRAPH_WINDOW, TARGET_USAGE, CRAWL_WINDOW_HOURS, 1.0)
    shards = [shard_name(i, tokens) for i in range(tokens)]
    clock = VirtualClock()
    servers = [RollingQuota(GRAPH_CALLS, GRAPH_WINDOW, clock) for _ in range(tokens)]  # one window per token
    per_day, plan_seconds = [], 0.0
    with connect(folder / f"bench-{tokens}.duckdb") as con:
        con.execute("CREATE SCHEMA bench")
        con.execute("CREATE TABLE bench.latest (username VARCHAR PRIMARY KEY, crawl_id BIGINT, observed_on DATE)")
        for night in range(days):
            day = FIRST_NIGHT + timedelta(days=night)
            started = time.perf_counter()
            plan = plans.make_plan(con, f"graph-{day}", usernames, day, budget, shards, 30)
            plan_seconds += time.perf_counter() - started
            night_start = night * 86_400.0
            statuses, calls, throttled = {}, 0, 0
            for shard, server in zip(shards, servers, strict=True):
                accounts = plan.shards[shard]
                clock.now = night_start
                run = run_shard(
                    len(accounts),
                    Quota(GRAPH_CALLS, GRAPH_WINDOW, TARGET_USAGE),
                    server,
                    clock,
                    concurrency=2,
                    latency=lambda: rng.uniform(1.0, 3.0),
                    until=night_start + CRAWL_WINDOW_HOURS * 3600,
                    key=shard,
                )
                calls += run.answered + run.throttled
                throttled += run.throttled
                reached = len(accounts) - run.deferred
                for username in accounts[:reached]:
                    statuses[username] = "not_found" if username in missing else "ok"
                for username in accounts[reached:]:
                    statuses[username] = "deferred"
            crawl_id = night + 1
            fetched = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            night_frame = pd.DataFrame({"username": list(statuses), "status": list(statuses.values())})
            insert_frame(
                con,
                "raw.crawl_runs",
                pd.DataFrame(
                    [
                        {
                            "crawl_id": crawl_id,
                            "source": "graph",
                            "as_of_date": day,
                            "started_at": fetched,
                            "status": "succeeded",
                            "accounts_requested": len(statuses),
                        }
                    ]
                ),
            )
            insert_frame(con, "raw.account_outcomes", night_frame.assign(crawl_id=crawl_id, fetched_at=fetched))
            con.register("night", night_frame)
            con.execute(UPDATE_LATEST, {"crawl_id": crawl_id, "day": day}).fetchall()
            con.unregister("night")
            con.execute(FEATURES_OF_THE_NIGHT, {"day": day}).fetchall()
            median_age, p95_age, observed = con.execute(AGES, {"day": day}).fetchall()[0]
            refreshed = sum(s == "ok" for s in statuses.values())
            per_day.append(
                {
                    "night": night + 1,
                    "planned": len(plan.usernames),
                    "refreshed": refreshed,
                    "calls": calls,
                    "throttled": throttled,
                    "deferred": sum(s == "deferred" for s in statuses.values()),
                    "observed": observed,
                    "median_age": median_age,
                    "p95_age": p95_age,
                }
            )
    nights = pd.DataFrame(per_day)
    return {
        "tokens": tokens,
        "budget": budget,
        "nights": nights,
        "plan_seconds": plan_seconds / days,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tokens", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--seed", type=int, default=20260601)
    args = parser.parse_args()
    print(
        f"{args.accounts:,} accounts, {args.days} simulated nights, Graph limit {GRAPH_CALLS} calls per token "
        f"per rolling hour, {TARGET_USAGE:.0%} target usage, {CRAWL_WINDOW_HOURS:g}-hour crawl window"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tokens in args.tokens:
            started = time.perf_counter()
            result = simulate(args.accounts, tokens, args.days, args.seed, Path(tmp))
            nights, budget = result["nights"], result["budget"]
            last = nights.iloc[-1]
            calls = int(nights["calls"].sum())
            rows.append(
                {
                    "tokens": tokens,
                    "accounts refreshed / night": f"{nights['refreshed'].mean():,.0f}",
                    "calls / night": f"{nights['calls'].mean():,.0f}",
                    "throttled calls": f"{int(nights['throttled'].sum())} of {calls:,} "
                    f"({nights['throttled'].sum() / calls:.2%})",
                    "deferred / night": f"{nights['deferred'].mean():,.0f} "
                    f"({nights['deferred'].sum() / (nights['deferred'].sum() + nights['refreshed'].sum()):.1%})",
                    f"observed by night {args.days}": f"{int(last['observed']) / args.accounts:.1%}",
                    f"age, night {args.days} (median / p95)": f"{last['median_age']:.0f} / {last['p95_age']:.0f} days",
                    "full refresh every": f"{budget.full_refresh_nights(args.accounts)} nights",
                    "tokens for a nightly refresh": budget.credentials_for_nightly(args.accounts),
                    "plan (SQL) / night": f"{result['plan_seconds']:.2f} s",
                    "simulation": f"{time.perf_counter() - started:.0f} s",
                }
            )
            print(f"  {tokens} token(s): done", flush=True)
    print(markdown(rows))


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table: docs/collection.md's (headers spelled out there, the two timings left out)."""
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
