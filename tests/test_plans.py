"""The nightly plan (warehouse/plans.py): the budget's arithmetic, the priority order, and over
many nights, that a budget of a third of the watchlist refreshes every account every three
nights, deferred ones first. Real DuckDB files; crawls written straight into raw."""

from datetime import date, timedelta

import pandas as pd
import pytest

from support import FETCHED_AT, add_crawl, derive
from warehouse.db import insert_frame
from warehouse.plans import NightBudget, make_plan, plan_summary, rank, store_plan

NIGHT = date(2026, 6, 10)
SHARDS = ["shard-001-of-002", "shard-002-of-002"]


def budget(accounts: int, credentials: int = 1) -> NightBudget:
    """A web budget of `accounts` calls per credential a night (one window, all of it used)."""
    return NightBudget("web", credentials, accounts, 3600.0, 1.0, 1.0, 1.0)


def test_the_budget_is_what_the_credentials_may_call_in_the_crawl_window():
    graph = NightBudget("graph", 1, 200, 3600.0, 0.85, 20.0, 1.0)  # the documented Graph limit
    assert (graph.windows, graph.calls_per_credential, graph.calls, graph.accounts) == (20, 3400, 3400, 3400)
    assert graph.full_refresh_nights(50_000) == 15 and graph.credentials_for_nightly(50_000) == 15
    assert graph.arithmetic(50_000, 3400) == (
        "50,000 watched; 3,400 calls tonight (1 token, 1.00 calls an account): 3,400 accounts planned; "
        "full refresh every 15 night(s); 15 tokens for a nightly refresh"
    )
    paged = NightBudget("graph", 3, 200, 3600.0, 0.85, 20.0, 3.0)  # three pages an account
    assert (paged.calls, paged.accounts, paged.credentials_for_nightly(50_000)) == (10_200, 3400, 45)
    short = NightBudget("web", 2, 75, 660.0, 0.85, 0.05, 1.0)  # a crawl window shorter than a window
    assert (short.windows, short.calls) == (1, 2 * 63)
    assert NightBudget("web", 1, 1, 3600.0, 1.0, 1.0, 2.0).full_refresh_nights(10) is None


def test_deferred_first_then_never_observed_as_listed_then_the_oldest_observation(con):
    listed = [f"acc{i}" for i in range(8)]
    # acc0..acc3 observed on the 1st, acc4 and acc5 on the 8th; acc6, acc7 never.
    add_crawl(con, date(2026, 6, 1), [{"username": u} for u in listed[:4]])
    add_crawl(con, date(2026, 6, 8), [{"username": u} for u in listed[4:6]])
    derive(con, date(2026, 6, 9))
    # Last night acc1 was deferred (its shard ran out of quota), acc2 not found.
    add_crawl(
        con,
        date(2026, 6, 9),
        [{"username": "acc1"}, {"username": "acc2"}],
        outcomes={"acc1": "deferred", "acc2": "not_found"},
    )
    ranked = rank(con, [listed[i] for i in (7, 6, 5, 4, 3, 2, 1, 0)], NIGHT, 30)
    assert ranked["username"].tolist() == ["acc1", "acc7", "acc6", "acc3", "acc0", "acc5", "acc4", "acc2"]
    assert ranked["priority"].tolist() == list(range(1, 9))
    reasons = dict(zip(ranked["username"], ranked["reason"], strict=True))
    assert reasons["acc1"] == "deferred" and reasons["acc7"] == reasons["acc6"] == "never_observed"
    assert {reasons[u] for u in ("acc3", "acc0", "acc5", "acc4", "acc2")} == {"oldest_observation"}
    # acc2 failed last night: its turn came, it goes to the back (with the 9th as its last try).
    assert ranked.set_index("username").loc["acc2", "last_tried_on"].date() == date(2026, 6, 9)


def test_among_accounts_seen_the_same_day_those_near_a_persona_boundary_come_first(con):
    names = ["far", "near", "middle"]
    add_crawl(con, date(2026, 6, 1), [{"username": u} for u in names])
    derive(con, date(2026, 6, 1))
    insert_frame(
        con,
        "clusters.snapshots",
        pd.DataFrame(
            [
                {
                    "version": 1,
                    "created_at": FETCHED_AT,
                    "feature_date": date(2026, 6, 1),
                    "n_influencers": 3,
                    "data_fingerprint": "x",
                    "code_version": "x",
                    "parameters": "{}",
                    "published_candidate": "x",
                    "n_clusters": 2,
                }
            ]
        ),
    )
    centres = [(0, 1.0, 1.0), (1, 11.0, 1.0)]
    insert_frame(
        con,
        "clusters.profiles",
        pd.DataFrame(
            [
                {
                    "version": 1,
                    "cluster": c,
                    "size": 1,
                    "mean_er": er,
                    "median_er": er,
                    "mean_active_rate": ar,
                    "median_active_rate": ar,
                    "er_level": "low",
                    "active_rate_level": "low",
                    "persona": f"p{c}",
                    "rank": c + 1,
                }
                for c, er, ar in centres
            ]
        ),
    )
    members = [("far", 0, 1.0), ("near", 0, 5.9), ("middle", 0, 4.0)]  # ER; the boundary is at 6
    insert_frame(
        con,
        "clusters.assignments",
        pd.DataFrame(
            [
                {"version": 1, "username": u, "cluster": c, "persona": "p0", "er": er, "active_rate": 1.0}
                for u, c, er in members
            ]
        ),
    )
    con.execute("UPDATE features.influencer_features SET er = NULL, active_rate = NULL").fetchall()  # the snapshot's
    ranked = rank(con, names, NIGHT, 30)
    assert ranked["username"].tolist() == ["near", "middle", "far"]
    assert ranked["attention"].is_monotonic_decreasing and ranked["attention"].iloc[-1] == 0.0


def test_a_plan_keeps_what_the_budget_allows_deals_it_to_the_shards_and_is_stored(con):
    listed = [f"acc{i}" for i in range(10)]
    plan = make_plan(con, "web-2026-06-10-x", listed, NIGHT, budget(3, credentials=2), SHARDS, 30)
    assert plan.usernames == listed[:6] and plan.reasons() == {"never_observed": 6}
    assert plan.shards == {SHARDS[0]: ["acc0", "acc2", "acc4"], SHARDS[1]: ["acc1", "acc3", "acc5"]}
    store_plan(con, plan, FETCHED_AT)
    stored = plan_summary(con, "web-2026-06-10-x")
    assert (stored["watched"], stored["planned"], stored["budget_calls"], stored["full_refresh_nights"]) == (
        10,
        6,
        6,
        2,
    )
    assert stored["arithmetic"] == plan.arithmetic() and "2 IPs/sessions" in stored["arithmetic"]
    assert stored["reasons"].to_dict("records")[0]["accounts"] == 6


def nights(con, listed, per_night, gone, defer_at, rng, count=9):
    """Plan, crawl what was planned, derive: `count` nights. The accounts in `gone` are not found;
    on nights in `defer_at` the quota runs out before the last 1-4 planned (deferred). Returns
    the nights each account was tried, every plan, and the accounts deferred each night."""
    tried: dict[str, list[int]] = {u: [] for u in listed}
    plans, deferred_by_night = [], []
    for night in range(count):
        day = NIGHT + timedelta(days=night)
        plan = make_plan(con, f"web-{day}", listed, day, budget(per_night), SHARDS[:1], 30)
        plans.append(plan)
        cut = rng.randint(1, 4) if night in defer_at else 0
        reached, deferred = plan.usernames[: len(plan.usernames) - cut], plan.usernames[len(plan.usernames) - cut :]
        deferred_by_night.append(deferred)
        outcomes = {u: "not_found" for u in reached if u in gone} | {u: "deferred" for u in deferred}
        add_crawl(con, day, [{"username": u} for u in reached + deferred], outcomes=outcomes)
        derive(con, day)
        for u in reached:
            tried[u].append(night)
    return tried, plans, deferred_by_night


def longest_wait(tried: dict[str, list[int]], count: int = 9) -> int:
    """The most nights any account waited between tries (from before the first night to after the last)."""
    return max(b - a for nights in tried.values() for a, b in zip([-1, *nights], [*nights, count], strict=True))


@pytest.mark.parametrize("watched,failing,seed", [(30, 0, 1), (31, 3, 2), (299, 20, 3)])
def test_a_third_of_the_watchlist_a_night_refreshes_every_account_every_three_nights(con, watched, failing, seed):
    """Every account is tried within three nights, the ones not found included (they take their
    turn, not everyone's); every observation in the features is at most three days old."""
    import random

    rng = random.Random(seed)
    listed = [f"acc{i:04d}" for i in range(watched)]
    tried, plans, _ = nights(con, listed, -(-watched // 3), set(rng.sample(listed, failing)), (), rng)
    assert all(len(plan.usernames) == -(-watched // 3) for plan in plans)
    assert longest_wait(tried) <= 3
    ages = con.execute(
        "SELECT max(feature_date - observed_on) FROM features.influencer_features "
        "WHERE feature_date = (SELECT max(feature_date) FROM features.influencer_features)"
    ).fetchall()[0][0]
    assert ages <= 2


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_accounts_the_quota_deferred_come_first_the_next_night(con, seed):
    import random

    rng = random.Random(seed)
    listed = [f"acc{i:04d}" for i in range(60)]
    tried, plans, deferred = nights(con, listed, 20 + 4, set(), {1, 4, 5, 7}, rng)  # a third, and room for 4
    assert sum(map(bool, deferred)) == 4
    for night, plan in enumerate(plans[1:], start=1):
        first = plan.accounts.head(len(deferred[night - 1]))
        assert first["username"].tolist() == deferred[night - 1]  # last night's deferred, first
        assert (plan.accounts["reason"] == "deferred").sum() == len(deferred[night - 1])
    assert longest_wait(tried) <= 3
