"""A night, read back from the warehouse and judged: failed when it read nothing or when more than
max_failure_share of the accounts it reached failed; deferred accounts are no failures."""

from datetime import date

import pytest

from support import add_crawl
from warehouse.nights import judge_night, review_night
from warehouse.plans import NightBudget, make_plan, store_plan

NIGHT = date(2026, 6, 1)


def night(con, statuses: dict[str, int], reasons: dict[str, str] | None = None, key="web-2026-06-01-x"):
    """A crawl whose accounts ended as `statuses` says (status -> how many), recorded as the crawl `key`."""
    outcomes = {f"{status}{i:03d}": status for status, n in statuses.items() for i in range(n)}
    crawl_id = add_crawl(con, NIGHT, [{"username": u} for u in outcomes], outcomes=outcomes)
    con.execute("UPDATE raw.crawl_runs SET landing_key = ? WHERE crawl_id = ?", [key, crawl_id]).fetchall()
    for status, reason in (reasons or {}).items():
        con.execute("UPDATE raw.account_outcomes SET reason = ? WHERE status = ?", [reason, status]).fetchall()
    return review_night(con, key)


def test_150_of_200_accounts_not_found_is_a_failed_night_that_says_so(con):
    review = night(con, {"ok": 50, "not_found": 150}, {"not_found": "data.user is null"})
    assert (review.reached, review.failed, review.read) == (200, 150, 50)
    assert judge_night(review, 0.2) == "150 of 200 accounts failed (more than 20%): not_found 150 (data.user is null)"
    examples = review.reasons.set_index("status").loc["not_found", "examples"]
    assert list(examples) == ["not_found000", "not_found001", "not_found002"]  # a few accounts per reason


def test_two_dns_failures_are_a_failed_night(con):
    review = night(con, {"error": 2}, {"error": "DNSLookupError: DNS lookup failed"})
    assert judge_night(review, 0.2) == (
        "nothing was crawled: 0 of 2 planned accounts read: error 2 (DNSLookupError: DNS lookup failed)"
    )


@pytest.mark.parametrize(
    "statuses,failed",
    [
        ({"ok": 80, "private": 0, "not_found": 20}, False),  # 20 %: at the limit, not over it
        ({"ok": 79, "not_found": 21}, True),
        ({"ok": 10, "deferred": 90}, False),  # the quota stopped the shard: not the accounts' failure
        ({"ok": 5, "error": 2, "deferred": 90}, True),  # 2 of the 7 it reached
        ({"deferred": 40}, True),  # nothing read at all
    ],
)
def test_deferred_accounts_are_neither_failures_nor_reached(con, statuses, failed):
    verdict = judge_night(night(con, statuses), 0.2)
    assert (verdict is not None) == failed, verdict
    if statuses.get("deferred") and failed:
        assert "deferred" in verdict


def test_a_review_names_the_plan_and_a_night_never_loaded(con):
    budget = NightBudget("web", 1, 75, 660.0, 0.85, 20.0, 1.0)
    plan = make_plan(con, "web-2026-06-01-never", ["a", "b"], NIGHT, budget, ["shard-001-of-001"], 30)
    store_plan(con, plan, NIGHT)
    review = review_night(con, "web-2026-06-01-never")
    assert review.crawl_id is None and review.planned == 2 and "2 accounts planned" in review.plan["arithmetic"]
    assert judge_night(review, 0.2).startswith("nothing was crawled: crawl web-2026-06-01-never stored nothing")
