"""The nightly crawl in shards over Prefect workers: a real Prefect server, a process work pool,
three workers and the sandbox, all on loopback."""

import re
import socket
from datetime import date

import duckdb
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from kic.serve import PrefectStack
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings

pytestmark = pytest.mark.e2e
DAY = date(2026, 6, 1)
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


def test_three_shards_run_on_more_than_one_worker_and_add_up_to_a_one_shard_night(tmp_path):
    from flows.nightly_refresh import nightly_refresh

    env = {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_LOGGING_EXTRA_LOGGERS": "kic",
        "KIC_WAREHOUSE": str(tmp_path / "unused.duckdb"),  # shard runs never open a warehouse
    }
    stack = PrefectStack(
        port=free_port(), env=env, log_dir=tmp_path / "logs", workers=3, worker_limit=1, worker_poll_seconds=1
    )
    sandbox_settings = SandboxSettings(influencers=90, seed=5, date=DAY)
    with Sandbox(sandbox_settings) as sandbox, stack, temporary_settings({PREFECT_API_URL: stack.api_url}):
        accounts = [a.username for a in sandbox.population.accounts]
        # Paced by the sandbox's quotas (per shard: one credential each), as a real source by its limits.
        common = {"accounts": accounts, "date": DAY, "base_url": sandbox.url, "quotas": sandbox.client_quotas()}
        sharded = nightly_refresh(**common, warehouse=str(tmp_path / "sharded" / "w.duckdb"), shards=3)
        single = nightly_refresh(**common, warehouse=str(tmp_path / "single" / "w.duckdb"), shards=1)

    # Each worker's log names the flow runs it picked up: the shards went to more than one.
    picked = {}
    for log in (tmp_path / "logs").glob("kic-worker-*.log"):
        runs = set(re.findall(r"crawl-shard-web-2026-06-01-\S+-shard-\d{3}-of-003", log.read_text()))
        picked[log.stem] = runs
    assert sum(len(runs) for runs in picked.values()) >= 3, picked
    assert len([w for w, runs in picked.items() if runs]) > 1, picked

    sharded_totals, single_totals = totals(tmp_path / "sharded" / "w.duckdb"), totals(tmp_path / "single" / "w.duckdb")
    assert len(sharded_totals) == 1  # the three shards are one crawl run
    requested, *_, outcomes, distinct, _ = sharded_totals[0]
    assert requested == outcomes == distinct == 90  # every account exactly one outcome
    assert sharded_totals == single_totals
    assert sharded["features"] == single["features"] == 90
