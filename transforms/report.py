"""What a snapshot's report shows, read from the warehouse (or the analysts' copy) in SQL.

Every query returns a bounded number of rows whatever the cohort size: per persona, its
figures and its top influencers by fit (clusters.persona_fit); influencers are drawn as
points up to POINTS_MAX, and beyond as counts per cell of a log-spaced grid, per persona;
moves between snapshots are counts per (previous, current) persona. Each persona's whole
member list is written by DuckDB (COPY) to a CSV file of its own, streamed at any size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from warehouse.ages import observation_ages
from warehouse.db import scalar
from warehouse.util import literal

POINTS_MAX = 20_000  # up to this many influencers the scatter draws each one
GRID_STEPS_PER_DECADE = 25  # beyond, a cell is a 25th of a decade on each log axis
LOG_FLOOR = 0.01  # ER or active_rate of 0 % (or below 0.01 %) sits at 0.01 % on the log axes
SNAPSHOTS_SHOWN = 8  # persona sizes over the last this many snapshots
TOP_SHOWN = 10  # influencers per persona card

PROFILES = """
SELECT rank, persona, persona_id, cluster, size, mean_er, mean_active_rate, median_er, median_active_rate,
       median_follower, follower_tier, er_level, active_rate_level
FROM clusters.profiles WHERE version = ? ORDER BY rank
"""
SNAPSHOT = """
SELECT version, created_at, feature_date, n_influencers, n_clusters, published_candidate,
       parameters->>'path' AS path, parameters->>'published_because' AS published_because, frame_made, frame_why
FROM clusters.snapshots WHERE version = ?
"""
# Grain: one row per influencer of the snapshot, in a temporary table of the report's own
# connection (read once, then the cards, the figures and the member lists read it). Key:
# username. observed_on: features.observations (transforms/sql/features/observations.sql).
MEMBERS_TABLE = "report_members"
MEMBERS = f"""
CREATE OR REPLACE TEMP TABLE {MEMBERS_TABLE} AS
SELECT
    fit.cluster,
    fit.fit_rank,
    fit.username,
    'https://www.instagram.com/' || fit.username || '/' AS profile_url,
    fit.persona,
    fit.fit_score,
    f.follower                AS followers,
    follower_tier(f.follower) AS follower_tier,
    fit.er                    AS er_pct,
    fit.active_rate           AS active_rate_pct,
    seen.observed_on
FROM clusters.persona_fit($version) AS fit
LEFT JOIN features.influencer_features AS f ON f.username = fit.username AND f.feature_date = $feature_date
LEFT JOIN features.observations($feature_date) AS seen ON seen.username = fit.username
"""
# Per persona: how old its observations are, and how many sit on the charts' zero lines.
PERSONA_FACTS = f"""
SELECT cluster, min(observed_on) AS oldest_observation, max(observed_on) AS newest_observation,
       count(*) FILTER (WHERE active_rate_pct = 0) AS zero_active_rate, count(*) FILTER (WHERE er_pct = 0) AS zero_er
FROM {MEMBERS_TABLE} GROUP BY cluster
"""
TOP = f"SELECT * FROM {MEMBERS_TABLE} WHERE fit_rank <= ? ORDER BY cluster, fit_rank"
# A persona's whole member list, best fit first: the columns of `kic export` it has.
MEMBER_LIST = f"""
SELECT fit_rank, username, profile_url, persona, $persona_id AS persona_id, fit_score, followers, follower_tier,
       er_pct, active_rate_pct, observed_on, $feature_date AS feature_date, $version AS snapshot_version
FROM {MEMBERS_TABLE} WHERE cluster = $cluster ORDER BY fit_rank
"""
POINTS = "SELECT cluster, er, active_rate FROM clusters.assignments WHERE version = ?"
# Cells of a log10 grid: the cell's centre and how many influencers of each cluster fall in it.
DENSITY = f"""
SELECT cluster,
       power(10, (floor(log10(greatest(er, {LOG_FLOOR})) * $steps) + 0.5) / $steps) AS er,
       power(10, (floor(log10(greatest(active_rate, {LOG_FLOOR})) * $steps) + 0.5) / $steps) AS active_rate,
       count(*) AS influencers
FROM clusters.assignments WHERE version = $version
GROUP BY ALL
"""
ELBOW = "SELECT k, sse FROM clusters.kmeans_elbow WHERE version = ? ORDER BY k"
CANDIDATES = """
SELECT candidate, n_clusters, threshold, silhouette, silhouette_se, is_published
FROM clusters.candidates WHERE version = ? ORDER BY algorithm, coalesce(k, 0), coalesce(threshold, 0)
"""
SIZES_OVER_TIME = """
SELECT version, persona_id, persona, size FROM clusters.profiles
WHERE version IN (SELECT version FROM clusters.snapshots WHERE version <= $version
                  ORDER BY version DESC LIMIT $shown)
ORDER BY version, rank
"""
# The top merges of the snapshot's hierarchical tree (none if no hierarchical candidate ran).
DENDROGRAM = """
SELECT merge, "left", "right", height, size, left_size, right_size
FROM clusters.dendrogram WHERE version = ? ORDER BY merge
"""
PREVIOUS_VERSION = "SELECT max(version) FROM clusters.snapshots WHERE version < ?"
# Influencers per (persona in the previous snapshot, persona in this one); NULL: not in it.
MOVES = """
SELECT p.persona AS previous_persona, c.persona AS current_persona, count(*) AS influencers
FROM (SELECT username, persona FROM clusters.assignments WHERE version = $previous) AS p
FULL OUTER JOIN (SELECT username, persona FROM clusters.assignments WHERE version = $version) AS c
    USING (username)
GROUP BY ALL ORDER BY influencers DESC
"""


@dataclass(frozen=True)
class ReportData:
    """Everything a snapshot's report draws, each part a small frame."""

    snapshot: pd.Series
    # One row per persona, best first: the clusters.profiles columns, plus oldest_observation,
    # newest_observation, zero_active_rate and zero_er.
    profiles: pd.DataFrame
    top: pd.DataFrame  # the TOP_SHOWN best fits of each persona (cluster, fit_rank, username, …)
    points: pd.DataFrame  # cluster, er, active_rate, influencers (1 per influencer, or per grid cell)
    drawn_as_density: bool
    elbow: pd.DataFrame
    candidates: pd.DataFrame
    sizes_over_time: pd.DataFrame  # version, persona_id, persona, size
    dendrogram: pd.DataFrame  # merge, left, right, height, size, left_size, right_size
    previous_version: int | None
    moves: pd.DataFrame
    ages: pd.DataFrame = field(default_factory=pd.DataFrame)  # warehouse.ages.observation_ages


def read_report_data(con: duckdb.DuckDBPyConnection, version: int, top: int = TOP_SHOWN) -> ReportData:
    """Read what the report of snapshot `version` (which exists) shows; leaves its members in
    MEMBERS_TABLE on `con` for write_member_lists."""
    result = con.execute(SNAPSHOT, [version])
    snapshot = pd.Series(dict(zip([c for c, *_ in result.description], result.fetchone(), strict=True)))
    con.execute(MEMBERS, {"version": version, "feature_date": snapshot["feature_date"]}).fetchall()
    profiles = con.execute(PROFILES, [version]).df()
    facts = con.execute(PERSONA_FACTS).df()
    as_density = int(snapshot["n_influencers"]) > POINTS_MAX
    if as_density:
        points = con.execute(DENSITY, {"version": version, "steps": GRID_STEPS_PER_DECADE}).df()
    else:
        points = con.execute(POINTS, [version]).df().assign(influencers=1)
    previous = scalar(con, PREVIOUS_VERSION, [version])
    moves = (
        con.execute(MOVES, {"previous": previous, "version": version}).df()
        if previous is not None
        else pd.DataFrame(columns=["previous_persona", "current_persona", "influencers"])
    )
    return ReportData(
        snapshot=snapshot,
        profiles=profiles.merge(facts, on="cluster", how="left"),
        top=con.execute(TOP, [top]).df(),
        points=points,
        drawn_as_density=as_density,
        elbow=con.execute(ELBOW, [version]).df(),
        candidates=con.execute(CANDIDATES, [version]).df(),
        sizes_over_time=con.execute(SIZES_OVER_TIME, {"version": version, "shown": SNAPSHOTS_SHOWN}).df(),
        dendrogram=con.execute(DENDROGRAM, [version]).df(),
        previous_version=previous,
        moves=moves,
        ages=observation_ages(con, version),
    )


def write_member_list(con: duckdb.DuckDBPyConnection, data: ReportData, persona: pd.Series, path: Path) -> None:
    """Write one persona's whole member list, best fit first, as CSV (read_report_data's members)."""
    params = {
        "persona_id": int(persona["persona_id"]),
        "cluster": int(persona["cluster"]),
        "feature_date": data.snapshot["feature_date"],
        "version": int(data.snapshot["version"]),
    }
    con.execute(f"COPY ({MEMBER_LIST}) TO {literal(path)} (FORMAT csv, HEADER)", params).fetchall()
