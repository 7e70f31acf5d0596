"""The landing area and its loader, on real Parquet files and real DuckDB warehouses (no crawler)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from pipeline.storage import connect
from scrapers.items import AccountItem
from scrapers.pipelines import rows_of
from warehouse.landing import Landing, shard_name
from warehouse.loading import closed_crawl_keys, load_crawl, remove_loaded
from warehouse.util import this_process
from warehouse.vocabulary import RunStatus

DAY = date(2026, 6, 1)
NOW = datetime(2026, 6, 1, 3, tzinfo=UTC)
KEY = "web-2026-06-01-030000-0000beef"


def item(username: str, followers: int = 1_000, posts: int = 3) -> AccountItem:
    return AccountItem(
        username=username,
        status="ok",
        profile={"followers": followers, "follows": 10, "media_count": posts, "is_private": False},
        posts=[
            {"post_id": f"{username}-{i}", "kind": "image", "likes": 10 * i, "comments": i, "taken_at": NOW}
            for i in range(posts)
        ],
        fetched_at=NOW,
    )


def land(landing: Landing, shards: dict[str, list[list[str]]], closed=True) -> None:
    """Record a crawl whose shards landed these batches of accounts (each a list of usernames)."""
    requested = {shard: [u for batch in batches for u in batch] for shard, batches in shards.items()}
    landing.open_crawl(KEY, "web", "http://127.0.0.1:1", DAY, requested)
    for shard, batches in shards.items():
        for number, batch in enumerate(batches, 1):
            landing.put_batch(KEY, shard, f"0000aaaa-{number:06d}", rows_of([item(u) for u in batch]))
        if closed:
            landing.close_shard(KEY, shard, RunStatus.SUCCEEDED, None, {"kic/accounts_written": len(batches)})


def counts(con) -> tuple:
    return tuple(
        con.execute(f"SELECT count(*) FROM raw.{table}").fetchall()[0][0]
        for table in ("account_outcomes", "profiles", "posts", "landed_files")
    )


@pytest.fixture
def landing(tmp_path):
    return Landing(str(tmp_path / "landing"))


def test_a_crawl_loads_in_one_go_and_loading_it_again_stores_nothing_twice(landing, con):
    land(landing, {shard_name(0, 2): [["a1", "a2"], ["a3"]], shard_name(1, 2): [["b1"]]})
    report = load_crawl(con, landing, KEY)
    assert report.closed and not report.refused
    assert counts(con) == (4, 4, 12, 9)  # 3 batches × (outcomes, profiles, posts) files
    run = con.execute("SELECT status, accounts_requested, accounts_ok, landing_key FROM raw.crawl_runs").fetchall()
    assert run == [(RunStatus.SUCCEEDED, 4, 4, KEY)]
    again = load_crawl(con, landing, KEY)
    assert again.crawl_id == report.crawl_id and again.files_loaded == 0
    assert counts(con) == (4, 4, 12, 9)
    assert closed_crawl_keys(con, [KEY, "another"]) == [KEY]


def test_loading_while_a_crawl_runs_takes_what_landed_and_later_the_rest(landing, con):
    shard = shard_name(0, 1)
    landing.open_crawl(KEY, "web", None, DAY, {shard: ["a1", "a2", "a3"]})
    landing.put_batch(KEY, shard, "0000aaaa-000001", rows_of([item("a1")]))
    first = load_crawl(con, landing, KEY, close=False)
    assert not first.closed and counts(con)[:3] == (1, 1, 3)
    landing.put_batch(KEY, shard, "0000aaaa-000002", rows_of([item("a2"), item("a3")]))
    landing.close_shard(KEY, shard, RunStatus.SUCCEEDED, None, {})
    second = load_crawl(con, landing, KEY)
    assert second.crawl_id == first.crawl_id and counts(con)[:3] == (3, 3, 9)


def test_a_half_written_batch_is_not_loaded_and_its_accounts_are_recorded_not_crawled(landing, con):
    shard = shard_name(0, 1)
    land(landing, {shard: [["a1"]]}, closed=False)
    landing.open_crawl(KEY, "web", None, DAY, {shard: ["a1", "a2"]})  # a2 was asked for too
    # A killed crawler left a batch whose commit file (account_outcomes) never landed, and a temporary file.
    frames = rows_of([item("a2")])
    landing.put_frame(landing.path(KEY, shard, "posts-0000bbbb-000001.parquet"), frames["posts"])
    landing.fs.pipe(landing.path(KEY, shard, ".account_outcomes-0000bbbb-000001.parquet.1234"), b"PAR1 half")
    report = load_crawl(con, landing, KEY)
    assert not report.refused
    assert con.execute("SELECT username FROM raw.posts GROUP BY ALL").fetchall() == [("a1",)]
    outcome = con.execute("SELECT status, reason FROM raw.account_outcomes WHERE username = 'a2'").fetchall()
    assert outcome == [("error", "not crawled: the crawler stopped before reaching it")]
    status, message = con.execute("SELECT status, message FROM raw.crawl_runs").fetchall()[0]
    assert status == RunStatus.INTERRUPTED and "never finished" in message


def test_a_corrupt_file_is_refused_by_name_and_the_rest_of_the_crawl_is_kept(landing, con):
    shard = shard_name(0, 1)
    land(landing, {shard: [["a1"], ["a2"], ["a3"]]})
    broken = landing.path(KEY, shard, "posts-0000aaaa-000002.parquet")
    landing.fs.pipe(broken, landing.fs.cat_file(broken)[:40])  # truncated
    report = load_crawl(con, landing, KEY)
    name = f"{KEY}/{shard}/posts-0000aaaa-000002.parquet"
    assert list(report.refused) == [name]
    assert con.execute("SELECT DISTINCT username FROM raw.posts ORDER BY 1").fetchall() == [("a1",), ("a3",)]
    # The refused batch's accounts are not lost silently: their outcome says why, naming the file.
    (reason,) = con.execute("SELECT reason FROM raw.account_outcomes WHERE username = 'a2'").fetchall()[0]
    assert reason.startswith(f"not loaded: its landed file {name} was refused"), reason
    message = con.execute("SELECT message FROM raw.crawl_runs").fetchall()[0][0]
    assert name in message
    assert con.execute("SELECT count(*) FROM raw.landed_files WHERE file LIKE '%000002%'").fetchall() == [(0,)]


def test_a_landing_area_behind_an_fsspec_url_loads_the_same(con):
    memory = Landing("memory://kic-tests/landing")
    land(memory, {shard_name(0, 1): [["m1", "m2"]]})
    load_crawl(con, memory, KEY)
    assert counts(con)[:3] == (2, 2, 6)
    memory.remove_crawl(KEY)


def test_loaded_crawls_are_removed_after_the_retention_period_only(landing, con):
    land(landing, {shard_name(0, 1): [["a1"]]})
    load_crawl(con, landing, KEY)
    assert remove_loaded(con, landing, retention_days=1) == []
    assert landing.crawl_keys() == [KEY]
    con.execute("UPDATE raw.crawl_runs SET finished_at = ?", [datetime.now(UTC) - timedelta(days=2)]).fetchall()
    assert remove_loaded(con, landing, retention_days=1) == [KEY]
    assert landing.crawl_keys() == []
    assert counts(con)[:3] == (1, 1, 3)  # the warehouse keeps what was loaded


def test_unanswered_accounts_are_what_a_retry_crawls(landing):
    shard = shard_name(0, 1)
    landing.open_crawl(KEY, "web", None, DAY, {shard: ["a1", "a2", "a3"]})
    assert landing.unanswered(KEY, shard) == ["a1", "a2", "a3"]
    landing.put_batch(KEY, shard, "0000aaaa-000001", rows_of([item("a2")]))
    assert landing.unanswered(KEY, shard) == ["a1", "a3"]


def test_a_crawl_missing_from_the_landing_area_is_named(landing, con):
    with pytest.raises(Exception, match="no crawl 'nope'"):
        load_crawl(con, landing, "nope")


def test_a_refused_commit_file_leaves_its_accounts_named_with_the_file(landing, con):
    """The batch's own list of accounts cannot be read: its accounts are told apart from ones
    the crawler never reached only by the shard having ended well."""
    shard = shard_name(0, 1)
    land(landing, {shard: [["a1"], ["a2"]]})
    broken = landing.path(KEY, shard, "account_outcomes-0000aaaa-000002.parquet")
    landing.fs.pipe(broken, b"not parquet")
    load_crawl(con, landing, KEY)
    (reason,) = con.execute("SELECT reason FROM raw.account_outcomes WHERE username = 'a2'").fetchall()[0]
    assert "account_outcomes-0000aaaa-000002.parquet" in reason and "refused" in reason, reason


def dead_process() -> dict:
    """A process record (as the landing area keeps them) of a process that has ended."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return {**this_process(), "pid": child.pid}


def test_a_crawl_whose_opener_died_before_any_crawler_started_is_abandoned(landing, monkeypatch):
    shard = shard_name(0, 1)
    landing.open_crawl(KEY, "web", None, DAY, {shard: ["a1", "a2"]})
    assert not landing.abandoned(KEY, shard)  # opened by this process, which is alive
    request = landing.request(KEY)
    landing.put_json(landing.path(KEY, "request.json"), {**request, "opener": dead_process()})
    assert landing.abandoned(KEY, shard)
    # Once a crawler has started, its own process answers for the shard.
    landing.mark_running(KEY, shard)
    assert not landing.abandoned(KEY, shard)


def test_a_crawl_killed_before_its_crawler_started_is_closed_by_the_next_plain_load(tmp_path):
    from support import cli

    warehouse = tmp_path / "data" / "warehouse.duckdb"
    landing = Landing(str(tmp_path / "data" / "landing"))
    shard = shard_name(0, 1)
    landing.open_crawl(KEY, "web", None, DAY, {shard: ["a1", "a2"]})
    landing.put_json(landing.path(KEY, "request.json"), {**landing.request(KEY), "opener": dead_process()})
    result = cli("load", "-w", warehouse)
    assert result.returncode == 0, result.stderr
    assert "still running" not in result.stdout
    with connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT status FROM raw.crawl_runs").fetchall() == [(RunStatus.INTERRUPTED,)]
        reasons = con.execute("SELECT DISTINCT reason FROM raw.account_outcomes").fetchall()
    assert reasons == [("not crawled: the crawler stopped before reaching it",)]


@pytest.mark.e2e  # two `kic load` processes
def test_two_loads_of_one_crawl_at_once_load_it_once(tmp_path):
    import subprocess
    import sys

    from support import subprocess_env

    warehouse = tmp_path / "data" / "warehouse.duckdb"
    landing = Landing(str(tmp_path / "data" / "landing"))
    land(landing, {shard_name(0, 1): [["a1", "a2"], ["a3"]]})
    env = subprocess_env({"KIC_WAREHOUSE": str(warehouse)})
    loads = [
        subprocess.Popen(
            [sys.executable, "-m", "kic", "load", KEY], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for load in loads:
        load.communicate(timeout=120)
    assert [load.returncode for load in loads] == [0, 0]
    with connect(warehouse, read_only=True) as con:
        assert counts(con) == (3, 3, 9, 6)
        assert con.execute("SELECT count(*) FROM raw.crawl_runs").fetchall() == [(1,)]
