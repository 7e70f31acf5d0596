"""`kic report` at scale: one snapshot report read from a warehouse of two big snapshots.

    uv run python benchmarks/report_scale.py [--influencers 1000000]

Builds the rows straight with SQL (no crawl, no fitting): two snapshots of every influencer,
ER and active_rate log-normal, personas by quadrant of the two, 10% of the influencers moved
between snapshots, a 30-merge dendrogram; and each snapshot's feature rows, read from three
crawls of different days (followers and observation dates for the cards and member lists).
Then times `steps.report` (queries, member lists, charts, HTML) in this process with its peak
RSS, and prints the page's size and the member lists'.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from meter import MIB, Meter  # this folder is on the path when the script runs

from pipeline import steps
from pipeline.settings import Settings
from pipeline.storage import connect

PERSONAS = ["Highest benefit", "Low Cost High benefit", "High Interactive", "Middle benefit", "Lowest benefit"]
SNAPSHOTS = """
INSERT INTO clusters.snapshots (version, created_at, feature_date, n_influencers, data_fingerprint, code_version,
                                parameters, published_candidate, n_clusters)
SELECT v, now(), DATE '2026-03-01' + (7 * v)::INTEGER, $influencers, 'benchmark', 'benchmark', '{}', 'hierarchical', 5
FROM range(1, 3) AS t(v)
"""
ASSIGNMENTS = """
INSERT INTO clusters.assignments (version, username, cluster, persona, er, active_rate)
WITH points AS (
    SELECT i, 'user_' || i AS username, exp(0.7 + 0.9 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())) AS er,
           exp(1.0 + 0.9 * sqrt(-2 * ln(random())) * cos(2 * pi() * random())) AS active_rate
    FROM range($influencers) AS t(i)
), clustered AS (
    SELECT *, CASE WHEN er > 20 AND active_rate > 20 THEN 1 WHEN active_rate > 20 THEN 2
                   WHEN er > 10 THEN 3 WHEN active_rate > 8 THEN 4 ELSE 5 END AS cluster
    FROM points
)
SELECT v, username, CASE WHEN v = 2 AND i % 10 = 0 THEN 1 + cluster % 5 ELSE cluster END AS c,
       $personas[c], er, active_rate
FROM clustered, range(1, 3) AS t(v)
"""
PROFILES = """
INSERT INTO clusters.profiles (version, cluster, size, mean_er, median_er, mean_active_rate, median_active_rate,
                               median_follower, er_level, active_rate_level, persona, rank, persona_id)
SELECT version, cluster, count(*), avg(er), median(er), avg(active_rate), median(active_rate), 30000, 'low', 'low',
       any_value(persona), cluster, cluster
FROM clusters.assignments GROUP BY version, cluster
"""
# Three crawls a few days apart, and each snapshot's features read from them.
CRAWLS = """
INSERT INTO raw.crawl_runs (crawl_id, source, as_of_date, started_at, finished_at, status)
SELECT c, 'synthetic', DATE '2026-03-08' + c::INTEGER, now(), now(), 'succeeded' FROM range(1, 4) AS t(c)
"""
FEATURES = """
INSERT INTO features.influencer_features (username, feature_date, crawl_id, source, follower, open_account,
                                          official_account, er, active_rate, is_clusterable, computed_at,
                                          observed_on, observed_at)
SELECT a.username, s.feature_date, 1 + hash(a.username) % 3, 'synthetic', 1000 + hash(a.username) % 500000,
       true, false, a.er, a.active_rate, true, now(),
       DATE '2026-03-08' + (1 + hash(a.username) % 3)::INTEGER, now()
FROM clusters.assignments AS a JOIN clusters.snapshots AS s USING (version)
"""
SMALL_TABLES = """
INSERT INTO clusters.kmeans_elbow SELECT v, k, 1e7 / k FROM range(1, 3) AS a(v), range(1, 10) AS b(k);
INSERT INTO clusters.candidates (version, candidate, algorithm, threshold, n_clusters, silhouette, sse, sizes,
                                 is_published)
SELECT v, 'hierarchical-complete-t' || t, 'hierarchical', t, 5, 0.5, 1e6, [1], t = 20
FROM range(1, 3) AS a(v), (VALUES (20), (25), (30)) AS b(t);
-- A caterpillar tree: leaf m + 1 joins the tree built so far, higher each time.
INSERT INTO clusters.dendrogram
SELECT v, m, CASE WHEN m = 0 THEN 0 ELSE 30 + m END, m + 1, 1 + m * 2, 1000 * (m + 2), 1000 * (m + 1), 1000
FROM range(1, 3) AS a(v), range(30) AS b(m);
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--influencers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(warehouse=Path(tmp) / "warehouse.duckdb")
        with connect(settings.warehouse) as con:
            con.execute(SNAPSHOTS, {"influencers": args.influencers})
            con.execute(ASSIGNMENTS, {"influencers": args.influencers, "personas": PERSONAS})
            con.execute(PROFILES)
            con.execute(SMALL_TABLES)
            con.execute(CRAWLS)
            con.execute(FEATURES)
        meter = Meter()
        with meter.part("report"):
            report = steps.report(settings, 2)
        meter.running = False
        seconds, peak = meter.parts["report"]
        members = sum(path.stat().st_size for path in report.member_lists.values())
        print(
            f"{args.influencers:,} influencers: report of snapshot {report.version} in {seconds:.1f} s, "
            f"peak RSS {peak / MIB:.0f} MiB, {report.path.stat().st_size / 1024:.0f} KiB HTML, "
            f"{len(report.member_lists)} member lists of {members / MIB:.0f} MiB"
        )


if __name__ == "__main__":
    main()
