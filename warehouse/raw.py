"""The raw layer's run log: opening and closing the row of a crawl or an import (its rows come
through warehouse/loading.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime

import duckdb

from warehouse.db import scalar
from warehouse.util import utcnow
from warehouse.vocabulary import READ_OUTCOMES, AccountStatus, RunStatus

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
