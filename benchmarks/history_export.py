"""An influencer's history and `kic export` at scale.

    uv run python benchmarks/history_export.py [--influencers 1000000] [--days 57] [--xlsx] [--copy]

Builds a warehouse straight with SQL (no crawl): one closed crawl run and one features row
per influencer per day for `--days` days (followers growing at a steady rate of their own,
plus noise; a few jumps), and a snapshot of every influencer on the last day. 57 days are
what one date's history reads (the date and the 56 days before it), so a longer history
costs the same. One liberty, stated in the output: features.influencer_features is created
without its primary-key index (DuckDB's ART index over tens of millions of keys takes long
and much memory to build; the view never uses it).

Then times, each in this process with its peak RSS: the history of one influencer (a filter
on username), the history of the last day (`influencer_history_between`), and the export of
the snapshot as csv and parquet (and xlsx with `--xlsx`, if under Excel's limit), read from
the warehouse, or from a published analysts' copy with `--copy` (publishing it is timed too).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

from meter import MIB, Meter  # this folder is on the path when the script runs

from models import personas
from pipeline.storage import connect, publish_copy
from renderers.workbook import write_workbook
from transforms.export import export_snapshot
from transforms.relations import view_sql

LAST_DAY = date(2026, 6, 30)
PERSONAS = sorted(set(personas.PERSONAS.values()))[:6]

CRAWL_RUNS = """
INSERT INTO raw.crawl_runs (crawl_id, source, as_of_date, started_at, finished_at, status)
SELECT d + 1, 'synthetic', $first + d::INT, now(), now(), 'succeeded' FROM range($days) AS t(d)
"""
# Followers grow by 0.01 % to 1 % a day per influencer, with 0.2 % noise; 1 in 10,000 buys
# 20 % more on the last day. One day at a time, in the order nightly writes come.
FEATURES_OF_A_DAY = """
INSERT INTO features.influencer_features BY NAME  -- columns not named here (the means per media kind) are NULL
SELECT
    username,
    ($first + $d::INT)::DATE AS feature_date,
    $d + 1 AS crawl_id,
    'synthetic' AS source,
    100::BIGINT AS post,
    (base * pow(1 + rate, $d) * (1 + 0.002 * (random() - 0.5))
        * CASE WHEN $d = $days - 1 AND i % 10000 = 7 THEN 1.2 ELSE 1 END)::BIGINT AS follower,
    100::BIGINT AS follow,
    true AS open_account,
    false AS official_account,
    random() * 10 AS er,
    random() * 10 AS active_rate,
    12 AS posts_observed,
    true AS is_clusterable,
    NULL AS not_clusterable_reason,
    now() AS computed_at,
    ($first + $d::INT)::DATE AS observed_on,
    now() AS observed_at
FROM influencers
"""
# Usernames as varied as real ones from their first letters (a shared prefix would make
# every sort compare whole strings).
INFLUENCERS = """
CREATE TEMP TABLE influencers AS
SELECT i, md5(i::VARCHAR)[:6] || '.beauty_' || i AS username,
       exp(7 + (hash(i) % 1000)::INT / 1000 * 7) AS base, 0.0001 + (hash(i * 7) % 100)::INT / 10000 AS rate
FROM range($influencers) AS t(i)
"""
SNAPSHOT = """
INSERT INTO clusters.snapshots (version, created_at, feature_date, n_influencers, data_fingerprint, code_version,
                                parameters, published_candidate, n_clusters)
VALUES (1, now(), $last, $influencers, 'benchmark', 'benchmark', '{}', 'benchmark', 6)
"""
PROFILES = """
INSERT INTO clusters.profiles (version, cluster, size, mean_er, median_er, mean_active_rate, median_active_rate,
                               er_level, active_rate_level, persona, rank, persona_id)
SELECT 1, c + 1, 0, 0, 0, 0, 0, 'low', 'low', $personas[c + 1], c + 1, c + 1 FROM range(6) AS t(c)
"""
ASSIGNMENTS = """
INSERT INTO clusters.assignments (version, username, cluster, persona, er, active_rate)
SELECT 1, username, (hash(username) % 6 + 1)::INT, $personas[(hash(username) % 6 + 1)::INT], er, active_rate
FROM features.influencer_features WHERE feature_date = $last
"""


def build(path: Path, influencers: int, days: int) -> None:
    first = LAST_DAY - timedelta(days=days - 1)
    with connect(path) as con:
        con.execute(CRAWL_RUNS, {"first": first, "days": days})
        # Made again without its primary-key index (see above), with the same columns.
        con.execute("CREATE TABLE features.no_index AS FROM features.influencer_features LIMIT 0")
        con.execute("DROP TABLE features.influencer_features")
        con.execute("ALTER TABLE features.no_index RENAME TO influencer_features")
        con.execute(INFLUENCERS, {"influencers": influencers})
        for d in range(days):
            con.execute(FEATURES_OF_A_DAY, {"first": first, "d": d, "days": days})
        con.execute(SNAPSHOT, {"last": LAST_DAY, "influencers": influencers})
        con.execute(PROFILES, {"personas": PERSONAS})
        con.execute(ASSIGNMENTS, {"last": LAST_DAY, "personas": PERSONAS})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--influencers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=57)
    parser.add_argument("--xlsx", action="store_true", help="also export xlsx (slow: about 6,000 rows/s)")
    parser.add_argument("--copy", action="store_true", help="publish the analysts' copy and read that")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kic-history-bench-"))
    meter = Meter()
    try:
        warehouse = folder / "warehouse.duckdb"
        print(
            f"{args.influencers:,} influencers x {args.days} days = {args.influencers * args.days:,} feature rows "
            "(features.influencer_features without its primary-key index)"
        )
        with meter.part("build the warehouse (SQL)"):
            build(warehouse, args.influencers, args.days)
        source = warehouse
        if args.copy:
            source = folder / "analytics.duckdb"
            with meter.part("publish the analysts' copy (first: every date)"):
                publish_copy(warehouse, source)
        with connect(source, read_only=True) as con:
            username = con.execute("SELECT md5('7')[:6] || '.beauty_7'").fetchall()[0][0]  # planted a jump
            with meter.part("history of one influencer (filter on username)"):
                rows = con.execute(
                    "FROM features.influencer_history WHERE username = ? ORDER BY feature_date", [username]
                ).fetchall()
            assert len(rows) == args.days and rows[-1][-1] is True, rows[-1]
            with meter.part("history of the last day, every influencer"):
                jumps = con.execute(
                    "SELECT count(*), count(*) FILTER (follower_jump) FROM features.influencer_history_between($d, $d)",
                    {"d": LAST_DAY},
                ).fetchall()[0]
            planted = len(range(7, args.influencers, 10000))
            print(f"last day: {jumps[0]:,} rows, {jumps[1]:,} flagged (planted: {planted:,})")
            formats = ["csv", "parquet"] + (["xlsx"] if args.xlsx else [])
            for fmt in formats:
                output = folder / f"export.{fmt}"
                with meter.part(f"kic export --format {fmt}"):
                    export_snapshot(con, None, None, fmt, output, write_workbook, views=view_sql())
                print(f"{fmt}: {output.stat().st_size / MIB:,.0f} MiB")
        meter.running = False
        for name, (seconds, peak) in meter.parts.items():
            print(f"{name:55} {seconds:8.1f} s  {peak / MIB:7.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
