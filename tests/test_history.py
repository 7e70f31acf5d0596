"""features.influencer_history on crafted multi-day warehouses: growth against the nearest
earlier feature date, the robust z-score of daily growth and its jump flag, the persona of
each date's latest snapshot; the same rows in the analysts' copy."""

from datetime import date, timedelta

import pandas as pd
import pytest

from pipeline.storage import connect, publish_copy
from support import add_crawl, derive, post
from warehouse.db import insert_frame

START = date(2026, 1, 1)
DAYS = 40
JUMP_DAY = 30


def day(n: int) -> date:
    return START + timedelta(days=n)


def steady(n: int) -> int:
    return 10_000 + 50 * n  # about 0.5 % a day


def jumper(n: int) -> int:
    return steady(n) + (3_000 if n >= JUMP_DAY else 0)  # 3,000 followers bought on one day, kept


def crawl_day(con, n: int, followers: dict[str, int]) -> None:
    add_crawl(
        con,
        day(n),
        [{"username": name, "followers": count} for name, count in followers.items()],
        [post(name, n, likes=100, comments=10) for name in followers],
    )


def snapshot(con, version: int, on: date, personas: dict[str, str]) -> None:
    """A snapshot row and its assignments, written directly (what store_snapshot stores)."""
    con.execute(
        "INSERT INTO clusters.snapshots (version, created_at, feature_date, n_influencers, data_fingerprint, "
        "code_version, parameters, published_candidate, n_clusters) "
        "VALUES (?, now(), ?, ?, 'x', 'test', '{}', 'kmeans-k3', 1)",
        [version, on, len(personas)],
    )
    assigned = pd.DataFrame({"username": list(personas), "persona": list(personas.values())})
    insert_frame(con, "clusters.assignments", assigned.assign(version=version, cluster=1, er=1.0, active_rate=1.0))


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    """40 daily feature dates: `steady` grows 50 a day, `jumper` too but gains 3,000 on day 30,
    `everyother` is crawled every second day only (features re-read the day before's crawl)."""
    warehouse = tmp_path_factory.mktemp("history") / "warehouse.duckdb"
    with connect(warehouse) as con:
        for n in range(DAYS):
            followers = {"steady": steady(n), "jumper": jumper(n)}
            if n % 2 == 0:
                followers["everyother"] = steady(n)
            crawl_day(con, n, followers)
            derive(con, day(n))
        snapshot(con, 1, day(20), {"steady": "Lowest benefit", "jumper": "Lowest benefit"})
        snapshot(con, 2, day(20), {"steady": "Middle benefit"})  # later the same date: it counts
        snapshot(con, 3, day(21), {"jumper": "High Interactive"})
    return warehouse


def history(path, username: str) -> dict[date, dict]:
    with connect(path, read_only=True) as con:
        result = con.execute("FROM features.influencer_history WHERE username = ? ORDER BY feature_date", [username])
        columns = [column for column, *_ in result.description]
        return {row[1]: dict(zip(columns, row, strict=True)) for row in result.fetchall()}


def test_growth_compares_with_the_reading_7_and_28_days_before(daily):
    rows = history(daily, "steady")
    assert len(rows) == DAYS
    d = rows[day(35)]
    assert (d["follower_growth_7d"], d["follower_growth_7d_since"]) == (350, day(28))
    assert d["follower_growth_7d_pct"] == pytest.approx(350 / steady(28) * 100)
    assert (d["follower_growth_28d"], d["follower_growth_28d_since"]) == (1400, day(7))
    assert d["follower_growth_28d_pct"] == pytest.approx(1400 / steady(7) * 100)
    assert rows[day(6)]["follower_growth_7d"] is None and rows[day(7)]["follower_growth_7d"] == 350
    assert rows[day(27)]["follower_growth_28d"] is None and rows[day(28)]["follower_growth_28d"] == 1400


def test_a_sudden_follower_jump_is_flagged_on_its_day_only(daily):
    rows = history(daily, "jumper")
    flagged = [d for d, row in rows.items() if row["follower_jump"] is True]
    assert flagged == [day(JUMP_DAY)]
    jump = rows[day(JUMP_DAY)]
    assert jump["daily_growth_pct"] == pytest.approx(3_050 / jumper(JUMP_DAY - 1) * 100)
    assert jump["jump_score"] > 3.5
    # Not enough history to judge before 5 earlier daily rates: unknown, not "no jump".
    assert [rows[day(n)]["jump_score"] for n in range(6)] == [None] * 6
    assert rows[day(6)]["follower_jump"] is False
    # The steady account's day-to-day wobble scores far below the cutoff.
    assert max(abs(row["jump_score"]) for n, row in enumerate(history(daily, "steady").values()) if n >= 6) < 1


def test_daily_growth_is_per_day_between_crawls_and_unknown_when_nothing_new_was_read(daily):
    rows = history(daily, "everyother")
    assert rows[day(11)]["observed_on"] == day(10)  # not crawled on day 11: day 10's crawl
    assert rows[day(11)]["daily_growth_pct"] is None
    assert rows[day(12)]["daily_growth_pct"] == pytest.approx(100 / steady(10) * 100 / 2)
    assert not any(row["follower_jump"] for row in rows.values())


def test_persona_comes_from_the_latest_snapshot_built_on_the_feature_date(daily):
    steady_rows, jumper_rows = history(daily, "steady"), history(daily, "jumper")
    assert (steady_rows[day(20)]["persona"], steady_rows[day(20)]["snapshot_version"]) == ("Middle benefit", 2)
    assert jumper_rows[day(20)]["persona"] is None  # not in snapshot 2, the one of that date
    assert (jumper_rows[day(21)]["persona"], jumper_rows[day(21)]["snapshot_version"]) == ("High Interactive", 3)
    assert steady_rows[day(19)]["persona"] is None  # no snapshot built on that date


def test_some_dates_compute_as_the_whole_history_does(daily):
    with connect(daily, read_only=True) as con:
        some = con.execute("FROM features.influencer_history_between(?, ?) ORDER BY ALL", [day(33), day(36)]).fetchall()
        whole = con.execute(
            "FROM features.influencer_history WHERE feature_date BETWEEN ? AND ? ORDER BY ALL", [day(33), day(36)]
        ).fetchall()
    assert len(some) == 4 * 3 and some == whole


def test_sparse_feature_dates_compare_with_the_nearest_one_at_or_before_and_not_too_old(tmp_path):
    on = [0, 3, 9, 12, 20, 40]  # feature dates with gaps
    with connect(tmp_path / "w.duckdb") as con:
        for n in on:
            crawl_day(con, n, {"ann": 1000 + n})
            derive(con, day(n))
    rows = history(tmp_path / "w.duckdb", "ann")
    since = {n: rows[day(n)]["follower_growth_7d_since"] for n in on}
    assert since[9] == day(0)  # nearest at or before day 2: day 0
    assert since[12] == day(3)  # day 9 is too recent, day 3 is the nearest before day 5
    assert since[20] == day(12)  # at or before day 13: day 12
    assert since[40] is None  # day 20 is older than 14 days: no 7-day growth
    assert rows[day(12)]["follower_growth_7d"] == 9
    assert rows[day(40)]["follower_growth_28d"] == 40 - 12  # at or before day 12, not before day -16


def test_the_analysts_copy_gives_the_same_history(daily, tmp_path):
    copy = publish_copy(daily, tmp_path / "analytics.duckdb")
    for username in ("steady", "jumper", "everyother"):
        assert repr(history(copy, username)) == repr(history(daily, username))
