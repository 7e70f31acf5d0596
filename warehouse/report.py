"""What a snapshot's report shows, read from the warehouse (or the analysts' copy) in SQL.

Every query returns a bounded number of rows whatever the cohort size: influencers are
drawn as points up to POINTS_MAX, and beyond as counts per cell of a log-spaced grid,
per persona; moves between snapshots are counts per (previous, current) persona.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from warehouse.ages import observation_ages
from warehouse.db import scalar

POINTS_MAX = 20_000  # up to this many influencers the scatter draws each one
GRID_STEPS_PER_DECADE = 25  # beyond, a cell is a 25th of a decade on each log axis
LOG_FLOOR = 0.01  # ER or active_rate of 0 % sits at 0.01 % on the log axes
SNAPSHOTS_SHOWN = 8  # persona sizes over the last this many snapshots

PROFILES = """
SELECT rank, persona, size, mean_er, mean_active_rate, median_follower, follower_tier
FROM clusters.profiles WHERE version = ? ORDER BY rank
"""
SNAPSHOT = """
SELECT version, created_at, feature_date, n_influencers, n_clusters, published_candidate,
       parameters->>'path' AS path, parameters->>'published_because' AS published_because
FROM clusters.snapshots WHERE version = ?
"""
POINTS = "SELECT persona, er, active_rate FROM clusters.assignments WHERE version = ?"
# Cells of a log10 grid: the cell's centre and how many influencers of each persona fall in it.
DENSITY = f"""
SELECT persona,
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
SELECT version, persona, size FROM clusters.profiles
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
    profiles: pd.DataFrame
    points: pd.DataFrame  # persona, er, active_rate, influencers (1 per influencer, or per grid cell)
    drawn_as_density: bool
    elbow: pd.DataFrame
    candidates: pd.DataFrame
    sizes_over_time: pd.DataFrame
    dendrogram: pd.DataFrame  # merge, left, right, height, size, left_size, right_size
    previous_version: int | None
    moves: pd.DataFrame
    ages: pd.DataFrame = field(default_factory=pd.DataFrame)  # warehouse.ages.observation_ages


def read_report_data(con: duckdb.DuckDBPyConnection, version: int) -> ReportData:
    """Read what the report of snapshot `version` (which exists) shows."""
    snapshot = con.execute(SNAPSHOT, [version]).df().iloc[0]
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
        profiles=con.execute(PROFILES, [version]).df(),
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
