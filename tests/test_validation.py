"""Validation streams a night's rows in chunks: what it finds does not depend on the chunk size."""

from datetime import UTC, date, datetime

import duckdb
import pytest

from pipeline import jobs, steps
from pipeline.settings import Settings
from pipeline.storage import connect
from support import add_crawl, mark_validated, post
from warehouse import quality
from warehouse.errors import KicError
from warehouse.quality import chunks, crawl_rows

DAY = date(2026, 11, 1)
FUTURE = datetime(2030, 1, 1, tzinfo=UTC)  # after the crawl fetched it: a bad post


@pytest.fixture
def settings(tmp_path):
    """A warehouse with an earlier crawl (for the volume check) and a night with bad rows
    spread over it: profiles and posts that fail row-level checks, and an influencer whose
    ER is implausible (its feature row is quarantined)."""
    settings = Settings(warehouse=tmp_path / "warehouse.duckdb")
    names = [f"acct.{i:02d}" for i in range(14)]
    with connect(settings.warehouse) as con:
        earlier = add_crawl(con, date(2026, 10, 25), [{"username": u} for u in names[:10]], validated=False)
        mark_validated(con, earlier)
        profiles = [{"username": u} for u in names]
        profiles[2] = {"username": names[2], "followers": -5}  # negative followers
        profiles[6] = {"username": "Bad-Name"}  # not an Instagram username
        profiles[9] = {"username": names[9], "follows": -1, "media_count": -2}  # two checks at once
        profiles[12] = {"username": names[12], "followers": 1}  # ER far above 100 %
        posts = [post(p["username"], n) for p in profiles for n in range(3)]
        posts[4] = post(profiles[1]["username"], 1, likes=-3)
        posts[17] = post(profiles[5]["username"], 2, taken_at=FUTURE)
        posts[30] = post(profiles[10]["username"], 0, comments=-1, taken_at=FUTURE)  # two checks at once
        posts[36] = post(profiles[12]["username"], 0, likes=5000)
        add_crawl(con, DAY, profiles, posts, validated=False)
    return settings


@pytest.mark.parametrize("chunk_rows", [1, 3, 2048, 3000, 10_000])
def test_a_query_streams_in_chunks_of_at_most_the_chunk_size(chunk_rows):
    with duckdb.connect() as con:
        got = list(chunks(con, "SELECT range AS i FROM range(5000)", chunk_rows=chunk_rows))
        assert all(0 < len(c) <= chunk_rows for c in got)
        assert [i for c in got for i in c["i"]] == list(range(5000))
        (empty,) = chunks(con, "SELECT range AS i FROM range(0)", chunk_rows=chunk_rows)  # one chunk, no rows
        assert empty.empty and list(empty.columns) == ["i"]


def test_the_rows_of_a_repeated_key_stream_in_one_chunk():
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA raw; CREATE TABLE raw.posts (crawl_id BIGINT, post_id VARCHAR, n INTEGER)")
        # 3000 posts; p5 and p2999 twice (far apart), p7 in 40 rows; and another crawl's p1.
        con.execute(
            "INSERT INTO raw.posts SELECT 1, 'p' || (CASE WHEN i = 3000 THEN 5 WHEN i = 3001 THEN 2999 "
            "WHEN i > 3001 THEN 7 ELSE i END), i FROM range(3041) AS t(i)"
        )
        con.execute("INSERT INTO raw.posts VALUES (2, 'p1', -1)")
        for chunk_rows in (1, 3, 50, 2048, 10_000):
            got = list(crawl_rows(con, "raw.posts", 1, ["crawl_id", "post_id"], chunk_rows))
            assert sorted(n for c in got for n in c["n"]) == list(range(3041))
            for post, rows in (("p5", 2), ("p2999", 2), ("p7", 40)):
                (chunk,) = [c for c in got if post in set(c["post_id"])]
                assert (chunk["post_id"] == post).sum() == rows
            assert all(len(c) <= max(chunk_rows, 40) for c in got)


def summary(validation) -> tuple:
    """What a validation found, without its ids: suites with their results, quarantined keys."""
    suites = [
        (
            v.suite,
            v.rows_validated,
            v.table_level_ok,
            sorted((e.expectation, e.level, e.success, e.unexpected_count, e.observed_value) for e in v.expectations),
        )
        for v in validation.suites
    ]
    quarantine = validation.quarantine.drop(columns="validation_id").astype(str)
    return suites, sorted(map(tuple, quarantine.to_numpy().tolist())), validation.quarantined


def test_a_crawl_validated_in_tiny_chunks_finds_what_one_chunk_finds(settings, monkeypatch):
    crawl_id = 2
    one_chunk = steps.validate_crawl_rows(settings, crawl_id)
    monkeypatch.setattr(quality, "CHUNK_ROWS", 7)  # 2 chunks of profiles, 6 of posts
    tiny = steps.validate_crawl_rows(settings, crawl_id)
    assert summary(tiny) == summary(one_chunk)
    suites, quarantined, distinct = summary(one_chunk)
    assert [s[:3] for s in suites] == [("raw_profiles", 14, True), ("raw_posts", 42, True), ("volume", 2, True)]
    failed = {
        (suite, expectation): count
        for suite, _, _, results in suites
        for expectation, _, success, count, _ in results
        if not success
    }
    assert failed == {
        ("raw_profiles", "expect_column_values_to_be_between(followers)"): 1,
        ("raw_profiles", "expect_column_values_to_be_between(follows)"): 1,
        ("raw_profiles", "expect_column_values_to_be_between(media_count)"): 1,
        ("raw_profiles", "expect_column_values_to_match_regex(username)"): 1,
        ("raw_posts", "expect_column_values_to_be_between(likes)"): 1,
        ("raw_posts", "expect_column_values_to_be_between(comments)"): 1,
        ("raw_posts", "expect_column_pair_values_a_to_be_greater_than_b(fetched_at>=taken_at)"): 2,
    }
    assert distinct == 3 + 3  # rows, not (row, expectation) pairs
    assert {(table, key) for table, _, _, _, _, key, _ in quarantined} == {
        ("raw.profiles", "crawl_id=2, username=acct.02"),
        ("raw.profiles", "crawl_id=2, username=Bad-Name"),
        ("raw.profiles", "crawl_id=2, username=acct.09"),
        ("raw.posts", "crawl_id=2, post_id=acct.01-1"),
        ("raw.posts", "crawl_id=2, post_id=acct.05-2"),
        ("raw.posts", "crawl_id=2, post_id=acct.10-0"),
    }


def test_features_validated_in_tiny_chunks_find_what_one_chunk_finds_and_the_rest_is_written(settings, monkeypatch):
    jobs.validate_crawl(settings, 2)
    one_chunk = steps.validate_feature_rows(settings, DAY)
    monkeypatch.setattr(quality, "CHUNK_ROWS", 5)  # 3 chunks
    tiny = steps.validate_feature_rows(settings, DAY)
    assert summary(tiny.validation) == summary(one_chunk.validation)
    assert tiny.fingerprint == one_chunk.fingerprint
    assert one_chunk.quarantined == ["acct.12"]  # its ER is implausible
    # 11 profiles of the night passed; the 3 quarantined accounts known before are read from the earlier crawl.
    assert one_chunk.fingerprint[0] == 14
    written = steps.write_features(settings, tiny)
    assert written.influencers == 13
    with connect(settings.warehouse, read_only=True) as con:
        users = {u for (u,) in con.execute("SELECT username FROM features.influencer_features").fetchall()}
    assert "acct.12" not in users and "Bad-Name" not in users and len(users) == 13


def test_features_that_changed_since_validation_are_not_written(settings):
    jobs.validate_crawl(settings, 2)
    validated = steps.validate_feature_rows(settings, DAY)
    with connect(settings.warehouse) as con:  # another run validates a newer crawl meanwhile
        newer = add_crawl(con, DAY, [{"username": "acct.00", "followers": 5000}], [post("acct.00", 7)])
    with pytest.raises(KicError, match="changed since they were validated"):
        steps.write_features(settings, validated)
    with connect(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM features.influencer_features").fetchall() == [(0,)]
    assert newer


def test_keys_repeated_across_chunks_are_found_as_in_one_chunk(settings, monkeypatch):
    """raw.profiles and raw.posts keep their keys without a PRIMARY KEY: a key can repeat
    anywhere in a crawl (a landed file loaded twice), and a check of each chunk must still
    find it."""
    with connect(settings.warehouse) as con:
        try:
            add_crawl(
                con,
                DAY,
                [{"username": "twice"}, *({"username": f"other.{i}"} for i in range(8)), {"username": "twice"}],
                [post("twice", 1), *(post(f"other.{i}", 1) for i in range(8)), post("twice", 1)],
                validated=False,
            )
        except duckdb.ConstraintException:
            pytest.skip("the raw tables have PRIMARY KEYs here: a key cannot repeat")
    one_chunk = steps.validate_crawl_rows(settings, 3)
    monkeypatch.setattr(quality, "CHUNK_ROWS", 5)
    assert summary(steps.validate_crawl_rows(settings, 3)) == summary(one_chunk)  # twice: in both
    failed = {(v.suite, e.expectation, e.unexpected_count) for v in one_chunk.suites for e in v.failed}
    assert failed - {("volume", "expect_column_pair_values_a_to_be_greater_than_b(rows>=min_rows)", 1)} == {
        ("raw_profiles", "expect_compound_columns_to_be_unique(crawl_id,username)", 2),
        ("raw_posts", "expect_compound_columns_to_be_unique(crawl_id,post_id)", 2),
    }
    assert set(one_chunk.quarantine["row_key"]) == {"crawl_id=3, username=twice", "crawl_id=3, post_id=twice-1"}


def test_counts_too_large_to_cluster_are_quarantined_whatever_their_source(settings):
    """A crawl gets the import's bound (10^12): above it a sum, ratio or squared distance could
    overflow in features or the recluster."""
    names = [f"acct.{i:02d}" for i in range(14)]
    profiles = [{"username": u} for u in names]
    profiles[3] = {"username": names[3], "followers": 2**62}
    posts = [post(u, 1) for u in names]
    posts[5] = post(names[5], 1, likes=10**15)
    with connect(settings.warehouse) as con:
        crawl_id = add_crawl(con, DAY, profiles, posts, validated=False)
    validated = steps.validate_crawl_rows(settings, crawl_id)
    failed = {(v.suite, e.expectation, e.unexpected_count) for v in validated.suites for e in v.failed}
    failed = {f for f in failed if f[0] != "volume"}  # fewer posts than the earlier crawl: not this test's point
    assert failed == {
        ("raw_profiles", "expect_column_values_to_be_between(followers)", 1),
        ("raw_posts", "expect_column_values_to_be_between(likes)", 1),
    }
    assert set(validated.quarantine["row_key"]) == {
        f"crawl_id={crawl_id}, username=acct.03",
        f"crawl_id={crawl_id}, post_id=acct.05-1",
    }


@pytest.mark.parametrize("data_docs", [True, False])
def test_data_docs_are_rendered_unless_turned_off_and_the_offline_summary_always_is(settings, data_docs):
    settings = settings.model_copy(update={"data_docs": data_docs})
    validation = jobs.validate_crawl(settings, 2, require=False)
    index = settings.data_docs_path / "index.html"
    assert index.is_file() == data_docs
    if data_docs:  # the index links each suite's page of this validation
        assert all(v.validation_id.split("-crawl-")[0] in index.read_text("utf-8") for v in validation.suites)
    assert "raw_profiles" in (settings.data_docs_path / "offline.html").read_text("utf-8")
    with connect(settings.warehouse, read_only=True) as con:
        recorded = con.execute("SELECT DISTINCT data_docs FROM quality.validation_runs WHERE crawl_id = 2").fetchall()
    assert recorded == [(str(index.resolve()) if data_docs else None,)]


def test_the_columns_a_contract_says_are_never_null_are_checked_so_and_no_other():
    """not_null is stated once, in the contract: each suite checks exactly those columns on every
    row (the features' clusterable-only checks are conditions of clustering, not of the table)."""
    import great_expectations.expectations as gxe

    from transforms import validation
    from transforms.relations import relation

    suites = {**validation.RAW_SUITES, validation.FEATURES_TABLE: validation.features_suite}
    assert len(suites) == 4
    for table, make_suite in suites.items():
        checked = {
            e.column
            for e in make_suite(["username"]).expectations
            if isinstance(e, gxe.ExpectColumnValuesToNotBeNull) and not e.row_condition
        }
        assert checked == {c.name for c in relation(table).columns.values() if c.not_null}, table
        assert table == "raw.imported_media_means" or checked, table  # the others state some
