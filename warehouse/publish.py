"""The analysts' copy: a read-only snapshot of the warehouse that each successful run refreshes.

DuckDB lets no process open a file that another one is writing, and a reader holding a
file makes a writer fail. So analysts never open the scheduler's warehouse: they open
the copy, which is rebuilt beside it and swapped in with an atomic rename. A session
open on the old copy keeps reading it until it reconnects; the next one sees the new.
"""

from __future__ import annotations

import os
from pathlib import Path

from warehouse.db import DEFAULT_LOCK_WAIT_SECONDS, STORAGE_COMPATIBILITY, connect, scalar


def publish_copy(warehouse: Path, copy: Path, *, lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS) -> Path:
    """Copy the whole warehouse (tables, views, schema version) to `copy`, atomically."""
    copy.parent.mkdir(parents=True, exist_ok=True)
    staging = copy.with_name(copy.name + ".tmp")
    staging.unlink(missing_ok=True)
    with connect(warehouse, lock_wait_seconds=lock_wait_seconds) as con:  # holds the write lock: consistent
        database = scalar(con, "SELECT current_database()")
        con.execute(f"ATTACH '{staging}' AS published (STORAGE_VERSION '{STORAGE_COMPATIBILITY}')").fetchall()
        try:
            con.execute(f'COPY FROM DATABASE "{database}" TO published').fetchall()
        finally:
            con.execute("DETACH published").fetchall()
    os.replace(staging, copy)
    return copy
