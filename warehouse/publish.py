"""The analysts' copy: a read-only snapshot of the warehouse that each successful run refreshes.

DuckDB lets no process open a file that another one is writing, and a reader holding a
file makes a writer fail. So analysts never open the scheduler's warehouse: they open
the copy, which is rebuilt beside it and swapped in with an atomic rename. A session
open on the old copy keeps reading it until it reconnects; the next one sees the new.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from kic.settings import Settings
from warehouse.db import STORAGE_COMPATIBILITY, connect, scalar


def publish_copy(warehouse: Path, copy: Path) -> Path:
    """Copy the whole warehouse (tables, views, schema version) to `copy`, atomically."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    staging = copy.with_name(copy.name + ".tmp")
    staging.unlink(missing_ok=True)
    with connect(warehouse) as con:  # holds the write lock: the copy is consistent
        database = scalar(con, "SELECT current_database()")
        con.execute(
            f"ATTACH '{staging}' AS published (STORAGE_VERSION '{STORAGE_COMPATIBILITY}')"
        ).fetchall()
        try:
            con.execute(f'COPY FROM DATABASE "{database}" TO published').fetchall()
        finally:
            con.execute("DETACH published").fetchall()
    os.replace(staging, copy)
    return copy


@contextmanager
def writing(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse, open for writing; once the writes succeeded, the analysts' copy refreshed."""
    with connect(settings.warehouse) as con:
        yield con
    publish_copy(settings.warehouse, settings.analytics_path)
