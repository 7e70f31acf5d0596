"""Storing and reading versioned clustering snapshots (the `clusters` schema)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

from warehouse.db import insert_frame, scalar, transaction
from warehouse.errors import KicError
from warehouse.raw import utcnow

NEXT_VERSION = "SELECT coalesce(max(version), 0) + 1 FROM clusters.snapshots"
LIST_SNAPSHOTS = """
SELECT version, created_at, feature_date, n_influencers, n_clusters, published_candidate,
       left(data_fingerprint, 12) AS fingerprint, code_version
FROM clusters.snapshots ORDER BY version
"""
LATEST_VERSION = "SELECT max(version) FROM clusters.snapshots"
CLUSTER_TABLE = """
SELECT rank, persona, cluster, size, mean_er, mean_active_rate, median_er,
       median_active_rate, median_follower, follower_tier, er_level, active_rate_level
FROM clusters.profiles WHERE version = ? ORDER BY rank
"""


# sha256 of a feature date's clusterable (username, er, active_rate), in username order:
# the data a snapshot was built on. Computed where the data is, in the warehouse.
CLUSTERABLE_FINGERPRINT = """
SELECT sha256(coalesce(string_agg(username || ':' || er::VARCHAR || ':' || active_rate::VARCHAR, ','
                                  ORDER BY username), ''))
FROM features.clusterable WHERE feature_date = ?
"""
# Influencers are written by their place in the clustered order, never carried one by one:
# the assignments join each row_index's cluster with the features it was read from.
INSERT_ASSIGNMENTS = """
INSERT INTO clusters.assignments (version, username, cluster, persona, er, active_rate)
SELECT $version, f.username, c.cluster, p.persona, f.er, f.active_rate
FROM features.clusterable AS f
JOIN cluster_per_row AS c ON c.row_index = f.row_index
JOIN clusters.profiles AS p ON p.version = $version AND p.cluster = c.cluster
WHERE f.feature_date = $feature_date
"""


class SnapshotContent(Protocol):
    """What a snapshot stores: its clusters.snapshots row, the rows of the small clusters.*
    tables, and the cluster of each clusterable influencer of its feature date, by row_index."""

    def snapshot_row(self) -> Mapping[str, Any]: ...

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


def clusterable_fingerprint(con: duckdb.DuckDBPyConnection, feature_date) -> str:
    return scalar(con, CLUSTERABLE_FINGERPRINT, [feature_date])


def write_snapshot(con: duckdb.DuckDBPyConnection, content: SnapshotContent) -> int:
    """Store a clustering as the next snapshot version, all of it in one transaction.

    Refused if the features it was built on changed since they were read (a nightly
    refresh re-deriving that date meanwhile): the rows would not line up.
    """
    row = {**content.snapshot_row(), "created_at": utcnow(), "code_version": code_version()}
    row["parameters"] = json.dumps(row["parameters"])
    con.register("cluster_per_row", content.cluster_per_row())
    try:
        return insert_snapshot(con, row, content)
    finally:
        con.unregister("cluster_per_row")


def insert_snapshot(con: duckdb.DuckDBPyConnection, row: dict, content: SnapshotContent) -> int:
    with transaction(con):
        if clusterable_fingerprint(con, row["feature_date"]) != row["data_fingerprint"]:
            raise KicError(
                f"the features of {row['feature_date']} changed while they were being clustered: "
                "run the recluster again"
            )
        version = scalar(con, NEXT_VERSION)
        insert_frame(con, "clusters.snapshots", pd.DataFrame([{**row, "version": version}]))
        for table, rows in content.tables().items():
            insert_frame(con, f"clusters.{table}", rows.assign(version=version))
        written = scalar(
            con,
            f"WITH written AS ({INSERT_ASSIGNMENTS} RETURNING 1) SELECT count(*) FROM written",
            {"version": version, "feature_date": row["feature_date"]},
        )
        if written != row["n_influencers"]:
            raise KicError(f"snapshot {version}: {written} assignments joined for {row['n_influencers']} influencers")
    return version


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
