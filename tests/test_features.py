from datetime import date, timedelta

import pytest

from readers.study_csv import MEAN_COLUMNS
from support import add_crawl, derive, mark_validated, post
from transforms.features import load_clusterable, staleness
from warehouse.errors import KicError

DAY = date(2026, 11, 1)


def features(con, on=DAY):
    derive(con, on)
    columns = [
        "username",
        *MEAN_COLUMNS,
        "er",
        "active_rate",
        "posts_observed",
        "is_clusterable",
        "not_clusterable_reason",
        "crawl_id",
        "follower",
    ]
    rows = con.execute(
        f"SELECT {', '.join(columns)} FROM features.influencer_features WHERE feature_date = ?", [on]
    ).fetchall()
    return {r[0]: dict(zip(columns, r, strict=True)) for r in rows}


def test_means_per_media_kind_and_the_studys_formulas(con):
    posts = [
        post("ann", 1, "image", 100, 10),
        post("ann", 2, "image", 300, 30, media_type="GraphSidecar"),  # carousel counts as image
        post("ann", 3, "video", 1000, 5, media_type="GraphVideo", product_type="clips"),  # reel
        post("ann", 4, "video", 500, 1, media_type="GraphVideo"),
        post("ann", 5, "igtv", 50, 2, media_type="GraphVideo", product_type="igtv"),
    ]
    add_crawl(con, DAY, [{"username": "ann", "followers": 4000}], posts)
    ann = features(con)["ann"]
    assert (ann["image_love"], ann["image_comment"]) == (200, 20)
    assert (ann["video_love"], ann["video_comment"]) == (750, 3)
    assert (ann["igtv_love"], ann["igtv_comment"]) == (50, 2)
    assert ann["er"] == pytest.approx((200 + 20) / 4000 * 100)
    assert ann["active_rate"] == pytest.approx(20 / (200 + 1) * 100)
    assert (ann["posts_observed"], ann["is_clusterable"]) == (5, True)


def test_hidden_likes_are_left_out_not_counted_as_zero(con):
    posts = [
        post("bo", 1, "image", 100, 10),
        post("bo", 2, "image", None, 30),
        post("cy", 1, "image", None, 4),
        post("cy", 2, "video", 80, 2),
    ]
    add_crawl(con, DAY, [{"username": "bo"}, {"username": "cy"}], posts)
    rows = features(con)
    assert rows["bo"]["image_love"] == 100  # the hidden count is not a zero
    assert rows["bo"]["image_comment"] == 20
    assert rows["bo"]["is_clusterable"]
    assert (rows["cy"]["is_clusterable"], rows["cy"]["not_clusterable_reason"]) == (False, "likes_hidden")
    assert rows["cy"]["er"] is None


def test_unreadable_influencers_are_kept_with_the_reason(con):
    profiles = [
        {"username": "priv", "is_private": True},
        {"username": "empty"},
        {"username": "nofans", "followers": 0},
        {"username": "videos"},
    ]
    posts = [post("nofans", 1, "image", 1, 1), post("videos", 1, "video", 10, 1)]
    add_crawl(con, DAY, profiles, posts)
    reasons = {u: (r["is_clusterable"], r["not_clusterable_reason"]) for u, r in features(con).items()}
    assert reasons == {
        "priv": (False, "private"),
        "empty": (False, "no_readable_posts"),
        "nofans": (False, "no_followers"),
        "videos": (False, "no_image_posts"),
    }


def test_each_influencer_is_read_from_its_latest_readable_crawl_up_to_the_date(con):
    week = timedelta(days=7)
    old = add_crawl(con, DAY - week, [{"username": "dee", "followers": 100}], [post("dee", 1, "image", 1, 1)])
    add_crawl(
        con,
        DAY,
        [{"username": "dee", "followers": 200}],
        [post("dee", 2, "image", 2, 2)],
        outcomes={"dee": "rate_limited"},
    )
    failed = add_crawl(con, DAY, [{"username": "dee", "followers": 300}], [post("dee", 3, "image", 3, 3)])
    # kic records no failed crawl today; an older warehouse may hold some, and they are never read.
    con.execute("UPDATE raw.crawl_runs SET status = 'failed' WHERE crawl_id = ?", [failed])
    newer = add_crawl(con, DAY + week, [{"username": "dee", "followers": 400}], [post("dee", 4, "image", 4, 4)])
    assert features(con, DAY)["dee"]["crawl_id"] == old  # rate-limited and failed crawls skipped
    assert features(con, DAY)["dee"]["follower"] == 100
    assert features(con, DAY + week)["dee"]["crawl_id"] == newer


def test_rederiving_a_date_replaces_its_rows(con):
    add_crawl(con, DAY, [{"username": "eve"}], [post("eve", 1, "image", 10, 1)])
    features(con)
    features(con)
    assert con.execute("SELECT count(*) FROM features.influencer_features").fetchall() == [(1,)]


def test_features_are_stale_after_a_new_validated_crawl_or_an_unvalidated_one(con):
    add_crawl(con, DAY, [{"username": "fay"}], [post("fay", 1, "image", 10, 1)])
    assert "newer than the latest features" in staleness(con)
    derive(con)
    assert staleness(con) is None
    add_crawl(con, DAY, [{"username": "fay"}], [post("fay", 2, "image", 10, 1)], validated=False)
    assert staleness(con) == "1 crawl(s) or import(s) not validated yet"


def test_staging_reads_only_validated_crawls_that_passed(con):
    passed = add_crawl(con, DAY, [{"username": "gus", "followers": 100}], [post("gus", 1, "image", 1, 1)])
    add_crawl(con, DAY, [{"username": "gus", "followers": 200}], [post("gus", 2, "image", 2, 2)], validated=False)
    failed = add_crawl(
        con, DAY, [{"username": "gus", "followers": 300}], [post("gus", 3, "image", 3, 3)], validated=False
    )
    mark_validated(con, failed, ok=False)  # e.g. a volume drop: on record, kept out of features
    assert con.execute("SELECT crawl_id FROM staging.readable_crawls").fetchall() == [(passed,)]
    assert features(con)["gus"]["crawl_id"] == passed


def test_a_non_finite_feature_written_around_validation_stops_the_recluster_in_one_line(con):
    add_crawl(con, DAY, [{"username": "ann", "followers": 4000}], [post("ann", 1, "image", 100, 10)])
    derive(con, DAY)
    assert len(load_clusterable(con, DAY)) == 1
    con.execute("UPDATE features.influencer_features SET er = 'inf'::DOUBLE WHERE username = 'ann'")
    with pytest.raises(KicError, match=f"features of {DAY}: 1 clusterable influencer.*non-finite er"):
        load_clusterable(con, DAY)


def test_each_row_says_when_it_was_observed_and_an_observation_too_old_is_stale(con):
    images = [post(u, n, "image", 100, 10) for u in ("fresh", "aging", "old") for n in (1, 2)]
    add_crawl(con, DAY - timedelta(days=45), [{"username": "old"}], [p for p in images if p["username"] == "old"])
    add_crawl(con, DAY - timedelta(days=30), [{"username": "aging"}], [p for p in images if p["username"] == "aging"])
    add_crawl(con, DAY, [{"username": "fresh"}], [p for p in images if p["username"] == "fresh"])
    derive(con, DAY)
    rows = {
        u: rest
        for u, *rest in con.execute(
            "SELECT username, observed_on, observed_at, is_clusterable, not_clusterable_reason, er "
            "FROM features.influencer_features WHERE feature_date = ?",
            [DAY],
        ).fetchall()
    }
    assert {u: r[0] for u, r in rows.items()} == {
        "fresh": DAY,
        "aging": DAY - timedelta(days=30),
        "old": DAY - timedelta(days=45),
    }
    assert all(r[1] is not None for r in rows.values())  # and when it was fetched
    # The default max_observation_age_days (30): 30 days old is still clusterable, 45 is not.
    assert rows["fresh"][2:4] == [True, None] and rows["aging"][2:4] == [True, None]
    assert rows["old"][2:] == [False, "stale", None]
    clusterable = con.execute("SELECT username FROM features.clusterable WHERE feature_date = ?", [DAY]).fetchall()
    assert sorted(u for (u,) in clusterable) == ["aging", "fresh"]


def test_a_2020_import_is_stale_in_2026_and_in_no_snapshot_of_then(con, study_file):
    from sandbox.synthetic import Population
    from support import import_study, synthetic_crawl

    import_study(con, study_file("beauty_data_extend.csv"), date(2020, 6, 1))
    assert derive(con, date(2020, 6, 1)).clusterable == 929  # as of its own day: all of it, as the study
    synthetic_crawl(con, Population(50, seed=9), DAY)
    summary = derive(con, DAY)
    assert summary.not_clusterable["stale"] == 929
    from_2020 = con.execute(
        "SELECT count(*) FROM features.clusterable c "
        "JOIN features.influencer_features f USING (username, feature_date) "
        "WHERE c.feature_date = ? AND f.observed_on < DATE '2026-01-01'",
        [DAY],
    ).fetchall()[0][0]
    assert from_2020 == 0 and summary.clusterable > 0
