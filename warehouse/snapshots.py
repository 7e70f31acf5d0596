"""Storing and reading versioned clustering snapshots (the `clusters` schema)."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from kic.errors import KicError
from warehouse.db import insert_frame, scalar, transaction
from warehouse.raw import utcnow

if TYPE_CHECKING:  # the model code (scikit-learn) is not needed to read snapshots
    from models.recluster import Clustering

NEXT_VERSION = "SELECT coalesce(max(version), 0) + 1 FROM clusters.snapshots"
INSERT_SNAPSHOT = """
INSERT INTO clusters.snapshots (version, created_at, feature_date, n_influencers,
    data_fingerprint, code_version, parameters, published_candidate, n_clusters)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
LIST_SNAPSHOTS = """
SELECT version, created_at, feature_date, n_influencers, n_clusters, published_candidate,
       left(data_fingerprint, 12) AS fingerprint, code_version
FROM clusters.snapshots ORDER BY version
"""
LATEST_VERSION = "SELECT max(version) FROM clusters.snapshots"
CLUSTER_TABLE = """
SELECT rank, persona, cluster, size, mean_er, mean_active_rate, median_er,
       median_active_rate, median_follower, er_level, active_rate_level
FROM clusters.profiles WHERE version = ? ORDER BY rank
"""


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


def write_snapshot(con: duckdb.DuckDBPyConnection, clustering: Clustering) -> int:
    """Store a clustering as the next snapshot version, all of it in one transaction."""
    with transaction(con):
        version = scalar(con, NEXT_VERSION)
        con.execute(
            INSERT_SNAPSHOT,
            [
                version,
                utcnow(),
                clustering.feature_date,
                clustering.n_influencers,
                clustering.data_fingerprint,
                code_version(),
                json.dumps(clustering.parameters),
                clustering.published,
                clustering.n_clusters,
            ],
        ).fetchall()
        for table, rows in clustering.tables().items():
            insert_frame(con, f"clusters.{table}", rows.assign(version=version))
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
