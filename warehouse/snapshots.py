"""Storing and reading versioned clustering snapshots (the `clusters` schema)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd

from warehouse.db import insert_frame, scalar, transaction
from warehouse.errors import KicError
from warehouse.util import utcnow

NEXT_VERSION = "SELECT coalesce(max(version), 0) + 1 FROM clusters.snapshots"
LIST_SNAPSHOTS = """
SELECT version, created_at, feature_date, n_influencers, n_clusters, published_candidate, frame_id,
       CASE WHEN frame_made THEN 'made' WHEN NOT frame_made THEN 'kept' END AS frame,
       left(data_fingerprint, 12) AS fingerprint, code_version
FROM clusters.snapshots ORDER BY version
"""
LATEST_VERSION = "SELECT max(version) FROM clusters.snapshots"
CLUSTER_TABLE = """
SELECT rank, persona, persona_id, cluster, size, mean_er, mean_active_rate, median_er,
       median_active_rate, median_follower, follower_tier, er_level, active_rate_level
FROM clusters.profiles WHERE version = ? ORDER BY rank
"""


# A snapshot is stored over the rows it was fitted on, as the layer above defines them: a
# relation `{rows}` of (feature_date, username, er, active_rate, row_index), row_index being the
# order the clusterers got them in (transforms.features.CLUSTERABLE). Storage knows no relation.

# The data a snapshot was built on: a feature date's rows (username, er, active_rate), each
# row's md5 folded by count, xor and sum (order-free: a username is one row per date), the
# three hashed by sha256. Computed where the data is, in one streaming pass, without the
# numbering (DuckDB drops the unused window, a sort): the string of every row in username
# order took 3.7 GB at 10^7 influencers.
ROWS_FINGERPRINT = """
WITH hashed AS (
    SELECT md5_number(username || ':' || er::VARCHAR || ':' || active_rate::VARCHAR) AS h
    FROM {rows} WHERE feature_date = ?
)
SELECT sha256(count(*)::VARCHAR || ':' || coalesce(bit_xor(h), 0)::VARCHAR || ':'
              || coalesce(sum((h >> 66)::BIGINT), 0)::VARCHAR)  -- exact: a double sum is not
FROM hashed
"""
# Influencers are written by their place in the clustered order, never carried one by one:
# the assignments join each row_index's cluster with the features it was read from.
INSERT_ASSIGNMENTS = """
INSERT INTO clusters.assignments (version, username, cluster, persona, er, active_rate, assigned_by, distance_ratio)
SELECT $version, f.username, c.cluster, p.persona, f.er, f.active_rate, c.assigned_by, c.distance_ratio
FROM {rows} AS f
JOIN cluster_per_row AS c ON c.row_index = f.row_index
JOIN clusters.profiles AS p ON p.version = $version AND p.cluster = c.cluster
WHERE f.feature_date = $feature_date
"""

# Persona identity: a cluster of the new snapshot continues a persona of the previous one when
# they share enough members (Jaccard: shared / in either, at least MIN_MEMBER_JACCARD) and each
# is the other's best such match; clusters left over on both sides are then matched by their
# centres (mean_er, mean_active_rate), mutual nearest within MAX_CENTRE_DISTANCE points. Mutual
# best matches are one-to-one by construction. Unmatched new clusters get new ids (never reused);
# unmatched previous personas are recorded as vanished. One hash join of the two snapshots'
# assignments on username; everything after it is per cluster pair (a few dozen rows).
MIN_MEMBER_JACCARD = 0.3
MAX_CENTRE_DISTANCE = 5.0
MATCH_PERSONAS = """
INSERT INTO clusters.persona_events
    (version, persona_id, event, cluster, previous_version, previous_cluster, matched_by, jaccard, centre_distance)
WITH previous AS (SELECT max(version) AS version FROM clusters.snapshots WHERE version < $version),
cur AS (SELECT cluster, size, mean_er, mean_active_rate FROM clusters.profiles WHERE version = $version),
prev AS (
    SELECT p.cluster, p.size, p.mean_er, p.mean_active_rate, p.persona_id
    FROM clusters.profiles AS p JOIN previous ON p.version = previous.version
),
shared AS (
    SELECT a.cluster, b.cluster AS previous_cluster, count(*) AS members
    FROM clusters.assignments AS a
    JOIN clusters.assignments AS b ON b.username = a.username
    WHERE a.version = $version AND b.version = (SELECT version FROM previous)
    GROUP BY ALL
),
overlap AS (
    SELECT s.cluster, s.previous_cluster, s.members / (c.size + p.size - s.members) AS jaccard
    FROM shared AS s JOIN cur AS c USING (cluster) JOIN prev AS p ON p.cluster = s.previous_cluster
),
by_members AS (
    SELECT cluster, previous_cluster FROM overlap WHERE jaccard >= $min_jaccard
    QUALIFY row_number() OVER (PARTITION BY cluster ORDER BY jaccard DESC, previous_cluster) = 1
        AND row_number() OVER (PARTITION BY previous_cluster ORDER BY jaccard DESC, cluster) = 1
),
centres AS (
    SELECT c.cluster, p.cluster AS previous_cluster,
           sqrt((c.mean_er - p.mean_er) ^ 2 + (c.mean_active_rate - p.mean_active_rate) ^ 2) AS distance
    FROM cur AS c CROSS JOIN prev AS p
    WHERE c.cluster NOT IN (SELECT cluster FROM by_members)
      AND p.cluster NOT IN (SELECT previous_cluster FROM by_members)
),
by_centres AS (
    SELECT cluster, previous_cluster FROM centres WHERE distance <= $max_distance
    QUALIFY row_number() OVER (PARTITION BY cluster ORDER BY distance, previous_cluster) = 1
        AND row_number() OVER (PARTITION BY previous_cluster ORDER BY distance, cluster) = 1
),
matched AS (
    SELECT *, 'members' AS matched_by FROM by_members
    UNION ALL
    SELECT *, 'centre' AS matched_by FROM by_centres
),
present AS (
    SELECT c.cluster, m.previous_cluster, m.matched_by, p.persona_id, o.jaccard,
           sqrt((c.mean_er - p.mean_er) ^ 2 + (c.mean_active_rate - p.mean_active_rate) ^ 2) AS centre_distance
    FROM cur AS c
    LEFT JOIN matched AS m USING (cluster)
    LEFT JOIN prev AS p ON p.cluster = m.previous_cluster
    LEFT JOIN overlap AS o ON o.cluster = c.cluster AND o.previous_cluster = m.previous_cluster
)
SELECT $version,
       coalesce(persona_id, (SELECT coalesce(max(persona_id), 0) FROM clusters.profiles)
                            + row_number() OVER (PARTITION BY persona_id IS NULL ORDER BY cluster)),
       CASE WHEN persona_id IS NULL THEN 'new' ELSE 'continued' END,
       cluster, (SELECT version FROM previous), previous_cluster, matched_by,
       CASE WHEN persona_id IS NOT NULL THEN coalesce(jaccard, 0) END, centre_distance
FROM present
UNION ALL
SELECT $version, persona_id, 'vanished', NULL, (SELECT version FROM previous), cluster, NULL, NULL, NULL
FROM prev WHERE cluster NOT IN (SELECT previous_cluster FROM matched)
"""
SET_PERSONA_IDS = """
UPDATE clusters.profiles AS p SET persona_id = e.persona_id
FROM clusters.persona_events AS e
WHERE p.version = $version AND e.version = $version AND e.cluster = p.cluster
"""
# A kept frame: each persona present continues under its frame id; one present in the snapshot
# before and empty now is recorded as vanished (the frame keeps it, should members come back).
KEEP_PERSONAS = """
INSERT INTO clusters.persona_events
    (version, persona_id, event, cluster, previous_version, previous_cluster, matched_by, jaccard, centre_distance)
WITH previous AS (SELECT max(version) AS version FROM clusters.snapshots WHERE version < $version),
prev AS (SELECT p.* FROM clusters.profiles AS p JOIN previous USING (version))
SELECT $version, c.persona_id, 'continued', c.cluster, (SELECT version FROM previous), p.cluster, 'frame',
       NULL, sqrt((c.mean_er - p.mean_er) ^ 2 + (c.mean_active_rate - p.mean_active_rate) ^ 2)
FROM clusters.profiles AS c LEFT JOIN prev AS p USING (persona_id)
WHERE c.version = $version
UNION ALL
SELECT $version, persona_id, 'vanished', NULL, (SELECT version FROM previous), cluster, NULL, NULL, NULL
FROM prev WHERE persona_id NOT IN (SELECT persona_id FROM clusters.profiles WHERE version = $version)
"""
# A frame made by a snapshot: its space and its personas as fitted, centred on their members' means.
INSERT_FRAME_PERSONAS = """
INSERT INTO clusters.frame_personas
SELECT $version, persona_id, cluster, persona, er_level, active_rate_level, follower_tier, rank,
       mean_er, mean_active_rate, size / $influencers
FROM clusters.profiles WHERE version = $version
"""
# The latest snapshot's frame; none when that snapshot is older than frames.
STANDING_FRAME = """
SELECT s.version, f.frame_id, f.scaling, f.space_offset, f.space_scale, maker.parameters
FROM clusters.snapshots AS s
LEFT JOIN clusters.frames AS f USING (frame_id)
LEFT JOIN clusters.snapshots AS maker ON maker.version = f.frame_id
ORDER BY s.version DESC LIMIT 1
"""
FRAME_PERSONAS = "SELECT * EXCLUDE (frame_id) FROM clusters.frame_personas WHERE frame_id = ? ORDER BY cluster"
# Where each row of a feature date stood in a snapshot, in row_index order.
STANDING_ROWS = """
SELECT coalesce(a.cluster, 0) AS cluster, coalesce(a.er, 'NaN'::DOUBLE) AS er,
       coalesce(a.active_rate, 'NaN'::DOUBLE) AS active_rate
FROM {rows} AS f
LEFT JOIN clusters.assignments AS a ON a.version = $version AND a.username = f.username
WHERE f.feature_date = $feature_date
ORDER BY f.row_index
"""
# The latest snapshot, to tell whether a run would store the same again.
LATEST_SNAPSHOT = """
SELECT version, data_fingerprint, parameters FROM clusters.snapshots ORDER BY version DESC LIMIT 1
"""
# What a snapshot's parameters hold beyond the clustering settings (derived from them and the data).
DERIVED_PARAMETERS = ("path", "influencers", "published_because")


class SnapshotContent(Protocol):
    """What a snapshot stores: its clusters.snapshots row (with frame_made: whether it makes a
    persona frame, and frame_id: the one it keeps), the rows of the small clusters.* tables, the
    cluster of each clusterable influencer of its feature date by row_index (with assigned_by
    and distance_ratio), and the space of the frame it makes."""

    def snapshot_row(self) -> Mapping[str, Any]: ...

    def frame_space(self) -> Mapping[str, Any]: ...

    def tables(self) -> Mapping[str, pd.DataFrame]: ...

    def cluster_per_row(self) -> pd.DataFrame: ...


@cache
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    version = metadata.version("korea-influencer-clustering")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+g{commit}" if commit else version


def rows_fingerprint(con: duckdb.DuckDBPyConnection, rows: str, feature_date) -> str:
    """The fingerprint of a feature date's rows of relation `rows` (ROWS_FINGERPRINT)."""
    return scalar(con, ROWS_FINGERPRINT.format(rows=rows), [feature_date])


def store_snapshot(
    con: duckdb.DuckDBPyConnection, content: SnapshotContent, *, rows: str, unless_unchanged: bool
) -> tuple[int, bool]:
    """Store a clustering of relation `rows` (a feature date's, numbered by row_index: see
    ROWS_FINGERPRINT) as the next snapshot version, all of it in one transaction; return the
    version and whether it was stored. With `unless_unchanged`, nothing is stored when the latest
    snapshot has the same data and clustering settings (its version is returned), decided inside
    the write transaction: two runs at once store one snapshot.

    Refused if the features it was built on changed since they were read (a nightly refresh
    re-deriving that date meanwhile): the rows would not line up.
    """
    row = {**content.snapshot_row(), "created_at": utcnow(), "code_version": code_version()}
    settings = {k: v for k, v in row["parameters"].items() if k not in DERIVED_PARAMETERS}
    row["parameters"] = json.dumps(row["parameters"])
    con.register("cluster_per_row", content.cluster_per_row())
    try:
        with transaction(con):
            standing = unchanged_snapshot(con, row["data_fingerprint"], settings) if unless_unchanged else None
            if standing is not None:
                return standing, False
            return insert_snapshot(con, row, content, rows), True
    finally:
        con.unregister("cluster_per_row")


def insert_snapshot(con: duckdb.DuckDBPyConnection, row: dict, content: SnapshotContent, rows: str) -> int:
    """The rows of a new snapshot, inside the caller's transaction."""
    if rows_fingerprint(con, rows, row["feature_date"]) != row["data_fingerprint"]:
        raise KicError(
            f"the features of {row['feature_date']} changed while they were being clustered: run the recluster again"
        )
    version = scalar(con, NEXT_VERSION)
    if row["frame_made"]:
        row = {**row, "frame_id": version}
    elif row["frame_id"] != standing_frame_id(con):
        raise KicError("another snapshot was stored while this one was fitted: run the recluster again")
    insert_frame(con, "clusters.snapshots", pd.DataFrame([{**row, "version": version}]))
    for table, frame in content.tables().items():
        insert_frame(con, f"clusters.{table}", frame.assign(version=version))
    written = scalar(
        con,
        f"WITH written AS ({INSERT_ASSIGNMENTS.format(rows=rows)} RETURNING 1) SELECT count(*) FROM written",
        {"version": version, "feature_date": row["feature_date"]},
    )
    if written != row["n_influencers"]:
        raise KicError(f"snapshot {version}: {written} assignments joined for {row['n_influencers']} influencers")
    if row["frame_made"]:
        match_personas(con, version)
        insert_frame(con, "clusters.frames", pd.DataFrame([{**content.frame_space(), "frame_id": version}]))
        con.execute(INSERT_FRAME_PERSONAS, {"version": version, "influencers": row["n_influencers"]}).fetchall()
    else:
        con.execute(KEEP_PERSONAS, {"version": version}).fetchall()
    return version


def standing_frame_id(con: duckdb.DuckDBPyConnection) -> int | None:
    found = con.execute(STANDING_FRAME).fetchone()
    return None if found is None else found[1]


@dataclass(frozen=True)
class StandingRows:
    """The latest snapshot's persona frame as stored (models.frames builds a Standing of it), and
    where each clusterable influencer of a feature date stood in that snapshot, in row_index order."""

    version: int
    frame_id: int
    scaling: str
    space_offset: np.ndarray
    space_scale: np.ndarray
    personas: pd.DataFrame  # clusters.frame_personas, by cluster
    frame_settings: dict  # the clustering settings of the snapshot that made the frame
    cluster: np.ndarray  # 0 where the influencer was not in that snapshot
    er: np.ndarray  # NaN where it was not
    active_rate: np.ndarray


def read_standing(con: duckdb.DuckDBPyConnection, rows: str, feature_date) -> StandingRows | None:
    """The standing frame and the feature date's rows of relation `rows` it stands on (where each
    stood in it); None when there is no snapshot yet or the latest is older than frames."""
    found = con.execute(STANDING_FRAME).fetchone()
    if found is None or found[1] is None:
        return None
    version, frame_id, scaling, offset, scale, parameters = found
    stood = con.execute(
        STANDING_ROWS.format(rows=rows), {"version": version, "feature_date": feature_date}
    ).fetchnumpy()
    settings = {k: v for k, v in json.loads(parameters).items() if k not in DERIVED_PARAMETERS}
    return StandingRows(
        version,
        frame_id,
        scaling,
        np.asarray(offset, dtype=np.float64),
        np.asarray(scale, dtype=np.float64),
        con.execute(FRAME_PERSONAS, [frame_id]).df(),
        settings,
        np.asarray(stood["cluster"], dtype=np.int64),
        np.asarray(stood["er"], dtype=np.float64),
        np.asarray(stood["active_rate"], dtype=np.float64),
    )


def match_personas(con: duckdb.DuckDBPyConnection, version: int) -> None:
    """Give the clusters of a stored snapshot their persona ids, and record each persona's event."""
    con.execute(
        MATCH_PERSONAS,
        {"version": version, "min_jaccard": MIN_MEMBER_JACCARD, "max_distance": MAX_CENTRE_DISTANCE},
    ).fetchall()
    con.execute(SET_PERSONA_IDS, {"version": version}).fetchall()


def unchanged_snapshot(con: duckdb.DuckDBPyConnection, fingerprint: str, settings: Mapping[str, Any]) -> int | None:
    """The latest snapshot's version if it was built on the same data with the same clustering
    settings (so a new one would store the same again), else None."""
    latest = con.execute(LATEST_SNAPSHOT).fetchone()
    if latest is None or latest[1] != fingerprint:
        return None
    stored = {k: v for k, v in json.loads(latest[2]).items() if k not in DERIVED_PARAMETERS}
    return latest[0] if stored == dict(settings) else None


def list_snapshots(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(LIST_SNAPSHOTS).df()


def resolve_version(con: duckdb.DuckDBPyConnection, version: int | None) -> int:
    """The given snapshot version if it exists, else the latest; KicError if there is none."""
    if version is None:
        latest = scalar(con, LATEST_VERSION)
        if latest is None:
            raise KicError("no snapshot yet: run `kic recluster` first")
        return latest
    if not scalar(con, "SELECT count(*) FROM clusters.snapshots WHERE version = ?", [version]):
        raise KicError(f"no snapshot version {version} (see `kic snapshots`)")
    return version


def cluster_table(con: duckdb.DuckDBPyConnection, version: int) -> pd.DataFrame:
    return con.execute(CLUSTER_TABLE, [version]).df()
