"""Who changed persona between two snapshots, and why: read from clusters.persona_changes
(its SQL and contract are in sql/clusters/)."""

from __future__ import annotations

import duckdb
import pandas as pd

from warehouse.db import scalar
from warehouse.errors import KicError
from warehouse.snapshots import resolve_version

PERSONA_CHANGES = "SELECT * FROM clusters.persona_changes(?, ?) ORDER BY change, username"
VERSION_BEFORE = "SELECT max(version) FROM clusters.snapshots WHERE version < ?"


def persona_changes(
    con: duckdb.DuckDBPyConnection, from_version: int | None, to_version: int | None
) -> tuple[int, int, pd.DataFrame]:
    """Who changed persona from one snapshot to another, and why (default: the two latest);
    KicError if either is missing or there is nothing to compare."""
    to_version = resolve_version(con, to_version)
    if from_version is None:
        from_version = scalar(con, VERSION_BEFORE, [to_version])
        if from_version is None:
            raise KicError(f"snapshot {to_version} is the first: no earlier snapshot to compare it with")
    from_version = resolve_version(con, from_version)
    return from_version, to_version, con.execute(PERSONA_CHANGES, [from_version, to_version]).df()
