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
       median_active_rate, median_follower, er_level, active_rate_level
FROM clusters.profiles WHERE version = ? ORDER BY rank
"""


class SnapshotContent(Protocol):
    """What a snapshot stores: its clusters.snapshots row and the rows of each clusters.* table."""

    def snapshot_row(self) -> Mapping[str, Any]: ...

    def tables(self) -> Mapping[str, pd.DataFrame]: ...


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


def write_snapshot(con: duckdb.DuckDBPyConnection, content: SnapshotContent) -> int:
    """Store a clustering as the next snapshot version, all of it in one transaction."""
    with transaction(con):
        version = scalar(con, NEXT_VERSION)
        row = {**content.snapshot_row(), "version": version, "created_at": utcnow(), "code_version": code_version()}
        row["parameters"] = json.dumps(row["parameters"])
        insert_frame(con, "clusters.snapshots", pd.DataFrame([row]))
        for table, rows in content.tables().items():
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
