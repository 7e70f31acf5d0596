"""Crawl throughput with the landing pipeline (Parquet batches) against a pipeline that discards items.

    uv run python benchmarks/crawl_throughput.py [--accounts 10000]

Crawls the same sandbox accounts twice in one run (Scrapy in a subprocess, as `kic crawl`
runs it; the sandbox at full speed, without the polite delays), reports accounts/s of both
and the landing pipeline's cost, and how long loading each crawl into the warehouse took.
Then compares the rows/s of the pipeline's batched writes with one plain bulk insert of the
same rows into a fresh DuckDB file. Target: the pipeline costs under 10 % of the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from pipeline import steps
from pipeline.crawl import (
    SANDBOX_SCRAPY_SETTINGS,
    CrawlRequest,
    crawl_env,
    open_crawl,
    pacing,
    plan_crawl,
    scrapy_command,
)
from pipeline.settings import Settings
from pipeline.storage import connect
from sandbox.server import Sandbox
from sandbox.settings import SandboxSettings
from scrapers.extensions import ProgressLines
from warehouse.db import insert_frame, transaction

# Put on the crawler's import path as a plain module: scikit-learn-extra installs a
# top-level package named `benchmarks` that would shadow this folder.
HERE = Path(__file__).resolve().parent
DAY = date(2026, 6, 1)
RAW_TABLES = ("account_outcomes", "profiles", "posts")


def timed_crawl(settings: Settings, base_url: str, usernames: Path, log: Path, extra: dict) -> dict:
    """Run one crawl; accounts/s between its first and last account, and over the whole process."""
    request = CrawlRequest(
        usernames=usernames.read_text().split(),
        as_of=DAY,
        base_url=base_url,
        scrapy_settings={**SANDBOX_SCRAPY_SETTINGS, **extra},
    )
    plan = plan_crawl(settings, request)
    opened = open_crawl(settings, request, plan)
    command = scrapy_command(
        settings, request, opened.crawl_key, opened.shards[0], usernames, log, pacing(settings, plan)
    )
    env = crawl_env(settings, "web")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    first = last = None
    done = 0
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.startswith(ProgressLines.PREFIX):
                done = json.loads(line[len(ProgressLines.PREFIX) :])["done"]
                now = time.perf_counter()
                first = first or (now, done)
                last = (now, done)
        if child.wait() != 0:
            said = log.read_text()[-2000:] if log.exists() else "no log"
            raise SystemExit(f"crawl failed:\n{said}")
    total = time.perf_counter() - started
    loading = time.perf_counter()
    steps.load(settings, opened.crawl_key)
    return {
        "load_seconds": time.perf_counter() - loading,
        "accounts": done,
        "accounts_per_s": (last[1] - first[1]) / (last[0] - first[0]),
        "process_seconds": total,
        "accounts_per_s_with_startup": done / total,
    }


def bulk_insert_rate(warehouse: Path, scratch: Path) -> tuple[int, float]:
    """Rows/s of one plain INSERT per table, of the rows the pipeline wrote, into a fresh file."""
    # Both DuckDB crawls wrote the same accounts; the bulk insert takes all their rows at once.
    with connect(warehouse, read_only=True) as source:
        frames = {t: source.execute(f"SELECT * FROM raw.{t}").df() for t in RAW_TABLES}
        ddl = {
            t: source.execute(
                f"SELECT sql FROM duckdb_tables() WHERE schema_name = 'raw' AND table_name = '{t}'"
            ).fetchall()[0][0]
            for t in RAW_TABLES
        }
    # A bare scratch file, not a warehouse: the raw tables alone, to time one plain INSERT each.
    target = duckdb.connect(str(scratch))
    target.execute("CREATE SCHEMA raw").fetchall()
    for sql in ddl.values():
        target.execute(sql.replace("nextval('raw.crawl_id_seq')", "0")).fetchall()
    started = time.perf_counter()
    with transaction(target):
        for table, rows in frames.items():
            insert_frame(target, f"raw.{table}", rows)
    seconds = time.perf_counter() - started
    target.close()
    rows = sum(len(f) for f in frames.values())
    return rows, rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    discard_pipeline = {"ITEM_PIPELINES": json.dumps({"discard_pipeline.DiscardPipeline": 300})}
    runs: dict[str, list[dict]] = {"discard": [], "landing": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with Sandbox(SandboxSettings(influencers=args.accounts, date=DAY)) as sandbox:
            # Paced by the sandbox's (generous) quota, as a real source by its published limits.
            settings = Settings(warehouse=tmp / "bench.duckdb", quotas=sandbox.client_quotas())
            usernames = tmp / "usernames.txt"
            usernames.write_text("\n".join(a.username for a in sandbox.population.accounts))
            # ABBA order, so that warm-up and drift weigh on both pipelines alike.
            for i, kind in enumerate(("discard", "landing", "landing", "discard")):
                extra = discard_pipeline if kind == "discard" else {}
                runs[kind].append(timed_crawl(settings, sandbox.url, usernames, tmp / f"{i}.log", extra))
        with connect(settings.warehouse, read_only=True) as con:
            stats = [
                shard
                for (s,) in con.execute("SELECT stats FROM raw.crawl_runs ORDER BY crawl_id").fetchall()
                for shard in json.loads(s).values()
                if shard and "kic/rows_written" in shard  # the discard pipeline's crawls landed nothing
            ]
        pipeline_rows = sum(s["kic/rows_written"] for s in stats)
        pipeline_seconds = sum(s["kic/write_seconds"] for s in stats)
        bulk_rows, bulk_rate = bulk_insert_rate(settings.warehouse, tmp / "bulk.duckdb")

    def mean(kind, key):
        return sum(r[key] for r in runs[kind]) / len(runs[kind])

    discard, stored = mean("discard", "accounts_per_s"), mean("landing", "accounts_per_s")
    busy = pipeline_seconds / sum(r["accounts"] / r["accounts_per_s"] for r in runs["landing"])
    print(f"accounts per crawl:            {args.accounts:,} (2 crawls per pipeline, ABBA order)")
    print(
        f"discard pipeline:              {discard:,.0f} accounts/s "
        f"({mean('discard', 'accounts_per_s_with_startup'):,.0f}/s with process start-up)"
    )
    print(
        f"landing pipeline:              {stored:,.0f} accounts/s "
        f"({mean('landing', 'accounts_per_s_with_startup'):,.0f}/s with process start-up)"
    )
    print(
        f"ratio landing / discard:       {stored / discard:.3f} "
        f"(throughput cost {1 - stored / discard:.1%}; target < 10%)"
    )
    print(f"time spent writing:            {busy:.1%} of the landing crawls")
    print(f"loading a crawl (kic load):    {mean('landing', 'load_seconds'):.2f} s (the warehouse's lock held)")
    print(
        f"pipeline writes (Parquet):     {pipeline_rows:,} rows in {pipeline_seconds:.2f} s "
        f"= {pipeline_rows / pipeline_seconds:,.0f} rows/s (batches of 200 accounts)"
    )
    print(f"plain bulk insert, same rows:  {bulk_rows:,} rows = {bulk_rate:,.0f} rows/s")


if __name__ == "__main__":
    main()
