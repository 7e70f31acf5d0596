"""Publishing the analysts' copy after a night, with 1, 30 and 365 nights of history.

    uv run python benchmarks/publish_history.py [--influencers 1000000] [--old-rows N]
        [--histories 1,30,365] [--repeats 3] [--keep DIR]

Builds a warehouse straight with SQL (no crawl): each night is a closed crawl run with one
raw.profiles and one raw.account_outcomes row per influencer, one features row per
influencer (all stamped with one computed_at, as `kic features` writes them), three suite
runs with a few quarantined profiles; every 7th night a snapshot (one assignment per
influencer, its candidates, elbow and cluster profiles); a watchlist of every influencer.
raw.posts stays empty: posts are not published (see docs/sql.md, "Why a copy").

For each history length H it adds nights up to H, publishes them (the first publish of a
history is a full export: shown, but not the figure), then adds night H+1 and times:
- the publish that ends the nightly refresh (new crawl + new features),
- the publish that ends the weekly recluster (+ a snapshot of every influencer),
- a publish with nothing changed;
and so on for `--repeats` nights, printing each and then the medians. Apart, it times
listing every partition with its fingerprint (the part of a publish that reads history).

Kept within this machine (2 cores, 76 GB of free disk) by two liberties, both stated in the
output: the timed nights have realistic random values, older nights the same row counts
(`--old-rows`, default: all influencers) but low-entropy values, so that a year of history
fits on disk; and the big tables are created without their primary-key indexes (a DuckDB
ART index over 365M keys takes hours to build and more memory than the machine has).
Publishing never reads those values or uses those indexes: it lists partitions from the run
log, the snapshots and the (date, computed_at) columns of the features, and exports only
the new partitions.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from models import personas
from pipeline.storage import connect, publish_copy
from warehouse.db import transaction
from warehouse.publish import COLUMNS, PARTITION_FILES, PARTITIONED, published_dir

FIRST_NIGHT = date(2025, 1, 1)
WEEK = 7
BIG_TABLES = ("raw.profiles", "raw.account_outcomes", "features.influencer_features", "clusters.assignments")
PERSONAS = sorted(set(personas.PERSONAS.values()))
USERNAME = "'beauty_' || lpad(i::VARCHAR, 7, '0')"

# Values of a timed night: random, of the study's rough shape. Of an older night: the same
# columns, low-entropy (they compress to almost nothing).
RANDOM = {
    "followers": "(exp(4 + random() * 9))::BIGINT",
    "follows": "(random() * 3000)::BIGINT",
    "media_count": "(13 + random() * 3000)::BIGINT",
    "likes": "round(random() * 5000, 1)",
    "comments": "round(random() * 200, 1)",
    "fetched_ms": "(i // 200) * 700 + (random() * 50)::INT",  # batches of 200 accounts
}
PLAIN = {
    "followers": "(1000 + i % 1000)::BIGINT",
    "follows": "(i % 100)::BIGINT",
    "media_count": "(100 + i % 50)::BIGINT",
    "likes": "(i % 500)::DOUBLE",
    "comments": "(i % 20)::DOUBLE",
    "fetched_ms": "(i // 200) * 700",
}

CRAWL_RUN = """
INSERT INTO raw.crawl_runs (crawl_id, source, origin, as_of_date, started_at, finished_at, status,
                            accounts_requested, accounts_ok, accounts_failed, profiles_written, posts_written)
VALUES ($night, 'web', 'benchmark', $day, $day + INTERVAL 2 HOUR, $day + INTERVAL 5 HOUR, 'succeeded',
        $rows, $rows, 0, $rows, 0)
"""
PROFILES = """
INSERT INTO raw.profiles BY NAME
SELECT $night AS crawl_id, {username} AS username, i::VARCHAR AS user_id, {followers} AS followers,
       {follows} AS follows, {media_count} AS media_count, i % 50 = 0 AS is_private, i % 20 = 0 AS is_verified,
       i % 3 = 0 AS is_business, i % 40 = 0 AS hide_like_counts,
       $day + INTERVAL 2 HOUR + to_milliseconds({fetched_ms}) AS fetched_at
FROM range($rows) AS t(i)
"""
OUTCOMES = """
INSERT INTO raw.account_outcomes BY NAME
SELECT $night AS crawl_id, {username} AS username, CASE WHEN i % 50 = 0 THEN 'private' ELSE 'ok' END AS status,
       200 AS http_status, $day + INTERVAL 2 HOUR + to_milliseconds({fetched_ms}) AS fetched_at
FROM range($rows) AS t(i)
"""
FEATURES = """
INSERT INTO features.influencer_features BY NAME
SELECT username, $day AS feature_date, $night AS crawl_id, 'web' AS source, media_count AS post,
       followers AS follower, follows AS follow, open_account, official_account,
       image_love, image_comment, video_love, video_comment, 0 AS igtv_love, 0 AS igtv_comment,
       CASE WHEN clusterable THEN (image_love + image_comment) / followers * 100 END AS er,
       CASE WHEN clusterable THEN image_comment / (image_love + 1) * 100 END AS active_rate,
       12 AS posts_observed, clusterable AS is_clusterable,
       CASE WHEN NOT clusterable THEN 'private account' END AS not_clusterable_reason,
       $day + INTERVAL 6 HOUR AS computed_at, $day AS observed_on, $day + INTERVAL 3 HOUR AS observed_at
FROM (
    SELECT {username} AS username, {media_count} AS media_count, {followers} AS followers, {follows} AS follows,
           i % 50 <> 0 AS open_account, i % 20 = 0 AS official_account, {likes} AS image_love,
           {comments} AS image_comment, {likes} AS video_love, {comments} AS video_comment, i % 50 <> 0 AS clusterable
    FROM range($rows) AS t(i)
)
"""
VALIDATIONS = """
INSERT INTO quality.validation_runs
SELECT suite || '-' || $night, $day + INTERVAL 5 HOUR, suite, CASE WHEN suite <> 'features' THEN $night END,
       CASE WHEN suite = 'features' THEN $day END, $rows, 10, CASE WHEN suite = 'raw_profiles' THEN 9 ELSE 10 END,
       CASE WHEN suite = 'raw_profiles' THEN 1 ELSE 0 END, CASE WHEN suite = 'raw_profiles' THEN 100 ELSE 0 END,
       true, NULL
FROM unnest(['raw_profiles', 'raw_posts', 'features']) AS s(suite);
INSERT INTO quality.expectation_results
SELECT suite || '-' || $night, 'expectation_' || e, 'row', NOT (suite = 'raw_profiles' AND e = 0),
       CASE WHEN suite = 'raw_profiles' AND e = 0 THEN 100 ELSE 0 END, NULL
FROM unnest(['raw_profiles', 'raw_posts', 'features']) AS s(suite), range(10) AS t(e);
INSERT INTO quality.quarantined_rows
SELECT 'raw_profiles-' || $night, 'raw.profiles', $night, {username}, NULL, NULL,
       'crawl_id=' || $night || ', username=' || {username}, 'expectation_0'
FROM range(0, $rows, greatest($rows // 100, 1)) AS t(i)
"""
SNAPSHOT = """
INSERT INTO clusters.snapshots (version, created_at, feature_date, n_influencers, data_fingerprint, code_version,
                               parameters, published_candidate, n_clusters)
VALUES ($version, $day + INTERVAL 7 HOUR, $day, $rows, md5($version::VARCHAR), 'benchmark', '{{}}', 'kmeans-k6', 6);
INSERT INTO clusters.candidates (version, candidate, algorithm, k, threshold, n_clusters, silhouette, sse, sizes,
                                 is_published, method)
SELECT $version, 'kmeans-k' || k, 'kmeans', k, NULL, k, 0.5, 1e6 / k, [($rows // k)::INTEGER], k = 6, 'scalable'
FROM range(2, 9) AS t(k);
INSERT INTO clusters.kmeans_elbow SELECT $version, k, 1e6 / k FROM range(1, 11) AS t(k);
INSERT INTO clusters.profiles (version, cluster, size, mean_er, median_er, mean_active_rate, median_active_rate,
                              median_follower, er_level, active_rate_level, persona, rank, persona_id)
SELECT $version, c, $rows // 6, 1, 1, 1, 1, 1000, 'middle', 'middle', $personas[c + 1], c + 1, c + 1
FROM range(6) AS t(c);
INSERT INTO clusters.assignments (version, username, cluster, persona, er, active_rate)
SELECT $version, {username}, (i * 7 + $version) % 6, $personas[(i * 7 + $version) % 6 + 1], {likes} / 1000, {comments}
FROM range($rows) AS t(i)
"""
WATCHLIST = """
INSERT INTO watchlist.accounts SELECT {username}, TIMESTAMPTZ '2024-12-01', 'manual', true FROM range($rows) AS t(i)
"""


class History:
    """The benchmark's warehouse, night by night."""

    def __init__(self, warehouse: Path, influencers: int, old_rows: int):
        self.warehouse, self.influencers, self.old_rows = warehouse, influencers, old_rows
        self.nights = self.version = 0
        with connect(warehouse) as con:  # the real schema, migrations and views
            for table in BIG_TABLES:
                con.execute(f"CREATE OR REPLACE TABLE {table} AS FROM {table} LIMIT 0")  # no key index
            run(con, WATCHLIST.format(username=USERNAME), {"rows": influencers})

    def add_night(self, timed: bool) -> None:
        self.nights += 1
        rows = self.influencers if timed else self.old_rows
        values = {"username": USERNAME, **(RANDOM if timed else PLAIN)}
        params = {"night": self.nights, "day": FIRST_NIGHT + timedelta(days=self.nights - 1), "rows": rows}
        with connect(self.warehouse) as con, transaction(con):
            for sql in (CRAWL_RUN, PROFILES, OUTCOMES, FEATURES, VALIDATIONS):
                run(con, sql.format(**values), params)
        if not timed and self.nights % WEEK == 0:
            self.add_snapshot(timed=False)

    def add_snapshot(self, timed: bool) -> None:
        self.version += 1
        rows = self.influencers if timed else self.old_rows
        values = {"username": USERNAME, **(RANDOM if timed else PLAIN)}
        day = FIRST_NIGHT + timedelta(days=self.nights - 1)
        with connect(self.warehouse) as con, transaction(con):
            run(
                con,
                SNAPSHOT.format(**values),
                {"version": self.version, "day": day, "rows": rows, "personas": PERSONAS},
            )


def run(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> None:
    """Run each statement of `sql` with the parameters it names."""
    for statement in filter(str.strip, sql.split(";")):
        con.execute(statement, {k: v for k, v in params.items() if f"${k}" in statement}).fetchall()


def timed_publish(warehouse: Path, copy: Path) -> float:
    start = time.perf_counter()
    publish_copy(warehouse, copy)
    return time.perf_counter() - start


def listing_seconds(warehouse: Path) -> float:
    """How long listing every partition and its fingerprint takes (part of every publish)."""
    with connect(warehouse, read_only=True) as con:
        start = time.perf_counter()
        for table, (_, fingerprints) in PARTITIONED.items():
            schema, name = table.split(".")
            signature = con.execute(COLUMNS, [schema, name]).fetchall()[0][0]
            con.execute(
                PARTITION_FILES.format(fingerprints=fingerprints.format(table=table)), {"signature": signature}
            ).fetchall()
        return time.perf_counter() - start


def size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--influencers", type=int, default=1_000_000, help="rows per timed night (default 1M)")
    parser.add_argument("--old-rows", type=int, help="rows per older night (default: --influencers)")
    parser.add_argument("--histories", default="1,30,365", help="nights of history to time after (default 1,30,365)")
    parser.add_argument("--repeats", type=int, default=3, help="timed nights per history; medians shown (default 3)")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    old_rows = args.old_rows or args.influencers
    histories = sorted(int(h) for h in args.histories.split(","))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="kic-publish-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    warehouse, copy = folder / "warehouse.duckdb", folder / "analytics.duckdb"
    for leftover in (warehouse, copy):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(published_dir(copy), ignore_errors=True)

    print(
        f"{args.influencers:,} influencers per timed night; older nights {old_rows:,} rows of low-entropy values; "
        f"big tables without key indexes; in {folder}",
        flush=True,
    )
    history = History(warehouse, args.influencers, old_rows)
    results = []
    try:
        for target in histories:
            start = time.perf_counter()
            while history.nights < target:
                history.add_night(timed=False)
            built = time.perf_counter() - start
            catch_up = timed_publish(warehouse, copy)
            print(
                f"history of {target} night(s): built in {built:.0f} s, first publish (full export) {catch_up:.1f} s",
                flush=True,
            )
            samples = []
            for _ in range(args.repeats):
                history.add_night(timed=True)
                nightly = timed_publish(warehouse, copy)
                history.add_snapshot(timed=True)
                weekly = timed_publish(warehouse, copy)
                unchanged = timed_publish(warehouse, copy)
                samples.append((nightly, weekly, unchanged))
                print(
                    f"  night {history.nights}: publish after the night {nightly:.2f} s, "
                    f"after the recluster {weekly:.2f} s, nothing changed {unchanged:.2f} s",
                    flush=True,
                )
            medians = [statistics.median(column) for column in zip(*samples, strict=True)]
            listing = listing_seconds(warehouse)
            row = (target, *medians, listing, size_mb(copy), size_mb(published_dir(copy)), size_mb(warehouse))
            results.append(row)
            print(f"  listing partitions {listing:.2f} s", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)

    print()
    print(
        "| nights of history | publish after a night (s) | after a recluster (s) | nothing changed (s) "
        "| listing partitions (s) | copy (MB) | published folder (MB) | warehouse (MB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target, nightly, weekly, unchanged, listing, copy_mb, folder_mb, warehouse_mb in results:
        print(
            f"| {target} | {nightly:.2f} | {weekly:.2f} | {unchanged:.2f} | {listing:.2f} "
            f"| {copy_mb:,.1f} | {folder_mb:,.0f} | {warehouse_mb:,.0f} |"
        )
    print(
        f"\n(medians of {args.repeats} timed nights of {args.influencers:,} rows of random values per table; older "
        f"nights: {old_rows:,} rows of low-entropy values; sizes after the last timed recluster)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
