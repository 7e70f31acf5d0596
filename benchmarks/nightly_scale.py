"""The nightly refresh at 10k, 100k and 1M accounts: wall time per stage, peak RSS per process.

    uv run python benchmarks/nightly_scale.py [--sizes 10000 100000 1000000] [--crawl-up-to 100000]

Cohorts up to --crawl-up-to accounts are crawled from the sandbox (Scrapy in its own process,
as `kic crawl` runs it, landing Parquet files; the crawler's peak RSS is Scrapy's own
`memusage/max` stat). Larger ones skip the crawl, whose cost the target excludes: their
landing files are synthesised straight in the crawl's format (the same folders, file names
and columns: one outcome and one profile per account, 12 posts each, engagement of the
study's shape), in batches of 100,000 accounts. Then the rest of the night runs in a process
of its own, every step timed with its peak RSS sampled: load what landed, validate the raw
rows (Great Expectations), derive and validate the features, publish the analysts' copy.
Targets on this machine: every process ≤ 2 GiB at 1M accounts; everything but the crawl
≤ 10 minutes at 1M accounts.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
from meter import MIB, Meter, run_process  # this folder is on the path when the script runs

from pipeline import jobs
from pipeline.crawl import SANDBOX_SCRAPY_SETTINGS, CrawlRequest, open_crawl, plan_crawl, run_shard
from pipeline.settings import Settings
from sandbox.synthetic import study_shaped_cohort
from warehouse.landing import Landing, shard_name

DAY = date(2026, 6, 1)
BATCH_ACCOUNTS = 100_000
POSTS_PER_ACCOUNT = 12


def crawl_sandbox(settings: Settings, n: int) -> tuple[str, float, int]:
    """Crawl n sandbox accounts into the landing area: crawl key, seconds, the crawler's peak RSS."""
    from sandbox.server import Sandbox
    from sandbox.settings import SandboxSettings

    with Sandbox(SandboxSettings(influencers=n, date=DAY)) as sandbox:
        usernames = [a.username for a in sandbox.population.accounts]
        request = CrawlRequest(
            usernames=usernames, as_of=DAY, base_url=sandbox.url, scrapy_settings=SANDBOX_SCRAPY_SETTINGS
        )
        started = time.perf_counter()
        # Paced by the sandbox's (generous) quota, as a real source by its published limits.
        settings = settings.model_copy(update={"quotas": settings.quotas.model_copy(update=sandbox.client_quotas())})
        opened = open_crawl(settings, request, plan_crawl(settings, request))
        run = run_shard(settings, request, opened.crawl_key, opened.shards[0])
        seconds = time.perf_counter() - started
    closed = Landing(settings.landing_root).closed(opened.crawl_key, run.shard)
    return opened.crawl_key, seconds, int(closed["stats"]["memusage/max"])


def synthesise_landing(settings: Settings, n: int, seed: int = 5) -> tuple[str, float]:
    """Land n accounts' outcomes, profiles and posts as a crawl would have: crawl key, seconds."""
    started = time.perf_counter()
    landing = Landing(settings.landing_root)
    shard = shard_name(0, 1)
    usernames = pd.Series(range(n)).map("beauty_{:07d}".format)
    key = f"web-{DAY}-synthetic-{n}"
    landing.open_crawl(key, "web", "synthetic", DAY, {shard: usernames})
    values = study_shaped_cohort(n, seed)
    cohort = pd.DataFrame({"username": usernames, **values})
    fetched = datetime(2026, 6, 1, 3, tzinfo=UTC)
    folder = Path(landing.path(key, shard))
    folder.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.register("cohort", cohort)
        for number, first in enumerate(range(0, n, BATCH_ACCOUNTS), 1):
            batch = f"00000000-{number:06d}"
            part = f"(SELECT * FROM cohort LIMIT {BATCH_ACCOUNTS} OFFSET {first})"
            posts = f"""
                SELECT username || '_' || j AS post_id, username, 'sc' || j AS shortcode,
                       CASE WHEN j % 6 = 5 THEN 'video' ELSE 'image' END AS kind, 'GraphImage' AS media_type,
                       NULL::VARCHAR AS product_type,
                       round(er * follower / 100 / (1 + active_rate / 100) * (0.8 + 0.4 * random()))::BIGINT AS likes,
                       round(er * follower / 100 * active_rate / (100 + active_rate)
                             * (0.8 + 0.4 * random()))::BIGINT AS comments,
                       NULL::BIGINT AS views, TIMESTAMPTZ '{fetched}' - to_days(j + 1) AS taken_at,
                       false AS is_pinned, TIMESTAMPTZ '{fetched}' AS fetched_at
                FROM {part}, range({POSTS_PER_ACCOUNT}) AS r(j)
            """
            profiles = f"""
                SELECT username, username AS user_id, follower AS followers, 300::BIGINT AS follows,
                       120::BIGINT AS media_count, false AS is_private, false AS is_verified,
                       false AS is_business, false AS hide_like_counts, TIMESTAMPTZ '{fetched}' AS fetched_at
                FROM {part}
            """
            outcomes = f"""
                SELECT username, 'ok' AS status, NULL::VARCHAR AS reason, 200 AS http_status,
                       NULL::VARCHAR AS detail, TIMESTAMPTZ '{fetched}' AS fetched_at
                FROM {part}
            """
            # The commit file last, as the crawler lands a batch.
            for table, sql in (("posts", posts), ("profiles", profiles), ("account_outcomes", outcomes)):
                target = folder / f"{table}-{batch}.parquet"
                con.execute(f"COPY ({sql}) TO '{target}.tmp' (FORMAT parquet)").fetchall()
                Path(f"{target}.tmp").rename(target)
    landing.close_shard(key, shard, "succeeded", None, {"synthetic": True})
    return key, time.perf_counter() - started


def after_crawl(warehouse: Path, crawl_key: str, report: Path) -> None:
    """The night after its crawl, in this process: every step timed, its peak RSS sampled."""
    meter = Meter()
    started = time.perf_counter()
    refresh = jobs.load_and_derive(Settings(warehouse=warehouse), crawl_key, call=meter.call)
    whole = time.perf_counter() - started
    meter.running = False
    report.write_text(
        json.dumps(
            {
                "parts": meter.parts,
                "whole": whole,
                "accounts": refresh.crawl.accounts_requested,
                "features": refresh.features.summary.influencers,
                "quarantined": refresh.quarantined,
            }
        )
    )


def measure(n: int, crawl_up_to: int, tmp: Path) -> dict:
    settings = Settings(warehouse=tmp / f"n{n}" / "warehouse.duckdb")
    if n <= crawl_up_to:
        key, crawl_seconds, crawler_rss = crawl_sandbox(settings, n)
        how = "sandbox crawl"
    else:
        (key, crawl_seconds), crawler_rss = synthesise_landing(settings, n), None
        how = "synthesised landing files"
    report = tmp / f"n{n}.json"
    command = [sys.executable, __file__, "--after-crawl", str(settings.warehouse), key, str(report)]
    seconds, rss = run_process(command)
    measured = json.loads(report.read_text())
    return {
        "how": how,
        "crawl_seconds": crawl_seconds,
        "crawler_rss": crawler_rss,
        "process_seconds": seconds,
        "process_rss": rss,
        **measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--crawl-up-to", type=int, default=100_000)
    parser.add_argument("--after-crawl", nargs=3, metavar=("WAREHOUSE", "CRAWL_KEY", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.after_crawl:
        warehouse, key, report = args.after_crawl
        after_crawl(Path(warehouse), key, Path(report))
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            results[n] = measure(n, args.crawl_up_to, Path(tmp))
            print(f"{n:,} accounts measured ({results[n]['how']})", flush=True)
    sizes = list(results)
    print(f"\n{'stage':<26}" + "".join(f"{n:>24,}" for n in sizes))
    print(f"{'crawl or synthesis':<26}" + "".join(f"{results[n]['crawl_seconds']:>20.1f} s  " for n in sizes))
    print(
        f"{'crawler peak RSS':<26}"
        + "".join(
            f"{results[n]['crawler_rss'] / MIB:>18.0f} MiB  " if results[n]["crawler_rss"] else f"{'-':>22}  "
            for n in sizes
        )
    )
    steps = list(dict.fromkeys(step for n in sizes for step in results[n]["parts"]))
    for step in steps:
        cells = []
        for n in sizes:
            spent, peak = results[n]["parts"].get(step, (0.0, 0))
            cells.append(f"{spent:>9.2f} s {peak / MIB:>7.0f} MiB  ")
        print(f"{step:<26}" + "".join(f"{c:>24}" for c in cells))
    print(f"{'after the crawl (process)':<26}" + "".join(f"{results[n]['process_seconds']:>20.1f} s  " for n in sizes))
    peaks = "".join(f"{results[n]['process_rss'] / MIB:>18.0f} MiB  " for n in sizes)
    print(f"{'peak RSS of that process':<26}" + peaks)
    for n in sizes:
        r = results[n]
        print(f"{n:,}: {r['how']}; {r['features']:,} feature rows, {r['quarantined']:,} rows quarantined")


if __name__ == "__main__":
    main()
