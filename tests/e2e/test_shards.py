"""The nightly crawl in shards over Prefect workers, the landing area on object storage: a real
Prefect server, a process work pool, three workers, the sandbox and an S3-compatible server
(moto's server mode, in a thread of this process), all on loopback."""

import re
import socket
from datetime import UTC, date, datetime

import duckdb
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from kic.serve import PrefectStack
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings

DAY = date(2026, 6, 1)
BUCKET = "kic-landing"
# One landing area per warehouse (a loader loads whatever its area holds that it has not), both in one bucket.
SHARDED, SINGLE = f"s3://{BUCKET}/sharded", f"s3://{BUCKET}/single"
TOTALS = """
SELECT accounts_requested, accounts_ok, accounts_failed, profiles_written, posts_written,
       (SELECT count(*) FROM raw.account_outcomes), (SELECT count(DISTINCT username) FROM raw.account_outcomes),
       (SELECT count(*) FROM features.influencer_features WHERE is_clusterable)
FROM raw.crawl_runs
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def totals(warehouse):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(TOTALS).fetchall()


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """An S3 API on 127.0.0.1 with an empty bucket, and the environment every process of the
    test reaches it with (s3fs reads botocore's variables: keys, region, endpoint). HOME is a
    folder of the test's own: an attempt to install a DuckDB extension creates ~/.duckdb/extensions,
    even when the download then fails."""
    import s3fs
    from moto.server import ThreadedMotoServer

    (tmp_path / "home").mkdir()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "kic-test",
        "AWS_SECRET_ACCESS_KEY": "kic-test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "HOME": str(tmp_path / "home"),
    }
    for name, value in env.items():  # this process: the loader (the nightly flow runs here)
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(BUCKET)
    try:
        yield env, fs
    finally:
        server.stop()


def crawls_landed(fs, landing: str) -> set[str]:
    fs.invalidate_cache()  # other processes landed and deleted files meanwhile
    folder = landing.removeprefix("s3://")
    if not fs.exists(folder):
        return set()
    return {path.rsplit("/", 1)[1] for path in fs.ls(folder, detail=False)}


def land_with_a_damaged_object(landing_url: str, fs) -> tuple[str, str]:
    """A crawl of two shards landed on S3, one batch each; shard 1's profiles file then damaged."""
    from scrapers.items import AccountItem
    from scrapers.pipelines import rows_of
    from warehouse.landing import Landing, shard_name
    from warehouse.vocabulary import RunStatus

    fetched = datetime(2026, 6, 2, 3, tzinfo=UTC)
    landing, key = Landing(landing_url), "web-2026-06-02-030000-0000d00d"
    shards = {shard_name(0, 2): ["dmg.a1", "dmg.a2"], shard_name(1, 2): ["dmg.b1"]}
    landing.open_crawl(key, "web", "http://127.0.0.1:1", date(2026, 6, 2), shards)
    for shard, usernames in shards.items():
        items = [
            AccountItem(
                username=u,
                status="ok",
                profile={"followers": 1_000, "follows": 10, "media_count": 2, "is_private": False},
                posts=[
                    {"post_id": f"{u}-{i}", "kind": "image", "likes": 10, "comments": 1, "taken_at": fetched}
                    for i in range(2)
                ],
                fetched_at=fetched,
            )
            for u in usernames
        ]
        landing.put_batch(key, shard, "0000aaaa-000001", rows_of(items))
        landing.close_shard(key, shard, RunStatus.SUCCEEDED, None, {"kic/accounts_written": len(usernames)})
    damaged = f"{key}/{shard_name(0, 2)}/profiles-0000aaaa-000001.parquet"
    fs.pipe(f"{landing_url.removeprefix('s3://')}/{damaged}", b"PAR1 not a parquet file PAR1")
    return key, damaged


def test_three_shards_on_three_workers_land_on_s3_and_add_up_to_a_one_shard_night(tmp_path, s3, monkeypatch):
    """Three crawl-shard runs on three workers land in the bucket, and the night adds up to a
    one-shard night of the same date; a damaged object is refused by name, the rest loaded;
    retention empties this warehouse's landing area, not another's; no DuckDB extension is
    installed by any process (the landed Parquet is read through fsspec, not httpfs)."""
    from flows.nightly_refresh import nightly_refresh
    from pipeline import jobs
    from pipeline.settings import Settings

    env, fs = s3
    worker_env = {
        **env,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_LOGGING_EXTRA_LOGGERS": "kic",
        "KIC_WAREHOUSE": str(tmp_path / "unused.duckdb"),  # shard runs never open a warehouse
    }
    stack = PrefectStack(
        port=free_port(), env=worker_env, log_dir=tmp_path / "logs", workers=3, worker_limit=1, worker_poll_seconds=1
    )
    sharded_warehouse, single_warehouse = tmp_path / "sharded" / "w.duckdb", tmp_path / "single" / "w.duckdb"
    sandbox_settings = SandboxSettings(influencers=90, seed=5, date=DAY)
    with Sandbox(sandbox_settings) as sandbox, stack, temporary_settings({PREFECT_API_URL: stack.api_url}):
        accounts = [a.username for a in sandbox.population.accounts]
        # Paced by the sandbox's quotas (per shard: one credential each), as a real source by its limits.
        common = {"accounts": accounts, "date": DAY, "base_url": sandbox.url, "quotas": sandbox.client_quotas()}
        monkeypatch.setenv("KIC_LANDING_URL", SHARDED)  # the loader's (this process); shards get it from the flow
        sharded = nightly_refresh(**common, warehouse=str(sharded_warehouse), shards=3)
        monkeypatch.setenv("KIC_LANDING_URL", SINGLE)
        single = nightly_refresh(**common, warehouse=str(single_warehouse), shards=1)

    # Each worker's log names the flow runs it picked up: the shards went to more than one.
    picked = {}
    for log in (tmp_path / "logs").glob("kic-worker-*.log"):
        runs = set(re.findall(r"crawl-shard-web-2026-06-01-\S+-shard-\d{3}-of-003", log.read_text()))
        picked[log.stem] = runs
    assert sum(len(runs) for runs in picked.values()) >= 3, picked
    assert len([w for w, runs in picked.items() if runs]) > 1, picked

    sharded_totals, single_totals = totals(sharded_warehouse), totals(single_warehouse)
    assert len(sharded_totals) == 1  # the three shards are one crawl run
    requested, *_, outcomes, distinct, _ = sharded_totals[0]
    assert requested == outcomes == distinct == 90  # every account exactly one outcome
    assert sharded_totals == single_totals
    assert sharded["features"] == single["features"] == 90

    # The landing areas are in the bucket: each night's crawl there (kept 7 days), the sharded
    # one in three shard folders; nothing landed beside either warehouse.
    with duckdb.connect(str(sharded_warehouse), read_only=True) as con:
        (sharded_key,) = con.execute("SELECT landing_key FROM raw.crawl_runs").fetchone()
    with duckdb.connect(str(single_warehouse), read_only=True) as con:
        (single_key,) = con.execute("SELECT landing_key FROM raw.crawl_runs").fetchone()
    assert crawls_landed(fs, SHARDED) == {sharded_key} and crawls_landed(fs, SINGLE) == {single_key}
    shard_folders = [p for p in fs.ls(f"{BUCKET}/sharded/{sharded_key}", detail=False) if "/shard-" in p]
    assert len(shard_folders) == 3 and all(fs.ls(folder) for folder in shard_folders)
    assert not (sharded_warehouse.parent / "landing").exists() and not (single_warehouse.parent / "landing").exists()

    # A damaged object: refused by name, the rest of its crawl loaded. Loaded with retention 0:
    # every crawl this warehouse loaded is deleted from its area, the other warehouse's kept.
    key, damaged = land_with_a_damaged_object(SHARDED, fs)
    settings = Settings(warehouse=sharded_warehouse, landing_url=SHARDED, landing_retention_days=0)
    (loaded,) = jobs.load(settings, [key])
    assert list(loaded.refused) == [damaged] and loaded.status == "interrupted"
    assert damaged in loaded.message
    with duckdb.connect(str(sharded_warehouse), read_only=True) as con:
        kept = con.execute(
            "SELECT username FROM raw.profiles JOIN raw.crawl_runs USING (crawl_id) WHERE landing_key = ?", [key]
        ).fetchall()
        answered = con.execute(
            "SELECT count(DISTINCT username) FROM raw.account_outcomes JOIN raw.crawl_runs USING (crawl_id) "
            "WHERE landing_key = ?",
            [key],
        ).fetchone()
    assert kept == [("dmg.b1",)] and answered == (3,)  # the other shard's account; an outcome for each
    assert crawls_landed(fs, SHARDED) == set() and crawls_landed(fs, SINGLE) == {single_key}

    # No process installed a DuckDB extension (it would be under $HOME/.duckdb/extensions).
    assert not (tmp_path / "home" / ".duckdb").exists()
