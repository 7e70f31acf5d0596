"""Writing the raw layer: crawl runs and the rows they fetched, in batches."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime

import duckdb
import pandas as pd

from warehouse.db import insert_frame, scalar
from warehouse.util import utcnow
from warehouse.vocabulary import READ_OUTCOMES, AccountStatus, RunStatus

RAW_TABLES = ("account_outcomes", "profiles", "posts", "imported_media_means", "rejected_rows")

OPEN_RUN = """
INSERT INTO raw.crawl_runs (source, origin, as_of_date, started_at, status, accounts_requested, landing_key)
VALUES (?, ?, ?, ?, ?, ?, ?)
RETURNING crawl_id
"""

# Counts are derived from what was actually stored, so they can never disagree with it.
CLOSE_RUN = """
UPDATE raw.crawl_runs SET
    status = $status,
    finished_at = $finished_at,
    accounts_ok = (SELECT count(*) FROM raw.account_outcomes
                   WHERE crawl_id = $crawl_id AND list_contains($read_outcomes, status)),
    accounts_failed = (SELECT count(*) FROM raw.account_outcomes
                       WHERE crawl_id = $crawl_id AND NOT list_contains($read_outcomes, status)
                         AND status <> $deferred)
                    + (SELECT count(*) FROM raw.rejected_rows WHERE crawl_id = $crawl_id),
    accounts_deferred = (SELECT count(*) FROM raw.account_outcomes WHERE crawl_id = $crawl_id AND status = $deferred),
    profiles_written = (SELECT count(*) FROM raw.profiles WHERE crawl_id = $crawl_id),
    posts_written = (SELECT count(*) FROM raw.posts WHERE crawl_id = $crawl_id),
    stats = $stats,
    message = $message
WHERE crawl_id = $crawl_id
"""


def open_run(
    con: duckdb.DuckDBPyConnection,
    source: str,
    origin: str | None,
    as_of_date: date,
    accounts_requested: int | None = None,
    *,
    started_at: datetime | str | None = None,  # a landed request.json says it in ISO 8601
    landing_key: str | None = None,
) -> int:
    """Record a new crawl or import as running (started now, unless a landed crawl says when);
    return its crawl id."""
    return scalar(
        con,
        OPEN_RUN,
        [source, origin, as_of_date, started_at or utcnow(), RunStatus.RUNNING, accounts_requested, landing_key],
    )


def close_run(
    con: duckdb.DuckDBPyConnection,
    crawl_id: int,
    status: RunStatus,
    stats: Mapping | None = None,
    message: str | None = None,
) -> None:
    """Close a run with its final status; counts come from the rows it stored."""
    con.execute(
        CLOSE_RUN,
        {
            "crawl_id": crawl_id,
            "status": status,
            "finished_at": utcnow(),
            "stats": json.dumps(stats, default=str) if stats is not None else None,
            "message": message,
            "read_outcomes": list(READ_OUTCOMES),
            "deferred": AccountStatus.DEFERRED,
        },
    ).fetchall()


def append(con: duckdb.DuckDBPyConnection, table: str, rows: pd.DataFrame | Sequence[Mapping]) -> int:
    """Append a batch of rows to raw.<table>, matching columns by name; return the count."""
    if table not in RAW_TABLES:
        raise ValueError(f"not a raw table: {table}")
    batch = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
    if batch.empty:
        return 0
    return insert_frame(con, f"raw.{table}", batch)
