"""Storing validation results and quarantined rows (the `quality` schema)."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from warehouse.db import insert_frame, transaction
from warehouse.vocabulary import READABLE_RUNS

PREVIOUS_CRAWL_COUNTS = """
SELECT
    (SELECT count(*) FROM raw.profiles p WHERE p.crawl_id = r.crawl_id) AS profiles,
    (SELECT count(*) FROM raw.posts p WHERE p.crawl_id = r.crawl_id)    AS posts
FROM raw.crawl_runs r
WHERE r.crawl_id < ? AND r.source = ? AND list_contains(?, r.status)
ORDER BY r.crawl_id DESC
LIMIT 1
"""
PREVIOUS_FEATURE_COUNT = """
SELECT count(*) FROM features.influencer_features
WHERE feature_date = (SELECT max(feature_date) FROM features.influencer_features WHERE feature_date < ?)
"""


def store_validations(
    con: duckdb.DuckDBPyConnection, runs: pd.DataFrame, results: pd.DataFrame, quarantine: pd.DataFrame
) -> None:
    """Record suite runs, their expectation results and the rows they quarantine, together."""
    with transaction(con):
        insert_frame(con, "quality.validation_runs", runs)
        insert_frame(con, "quality.expectation_results", results)
        if len(quarantine):
            insert_frame(con, "quality.quarantined_rows", quarantine)


def previous_crawl_counts(con: duckdb.DuckDBPyConnection, crawl_id: int, source: str) -> tuple[int, int] | None:
    """(profiles, posts) of the same source's readable crawl before `crawl_id`, if any."""
    rows = con.execute(PREVIOUS_CRAWL_COUNTS, [crawl_id, source, list(READABLE_RUNS)]).fetchall()
    return rows[0] if rows else None


def previous_feature_count(con: duckdb.DuckDBPyConnection, feature_date: date) -> int | None:
    count = con.execute(PREVIOUS_FEATURE_COUNT, [feature_date]).fetchall()[0][0]
    return count or None


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """A table's columns as its DDL declares them, in order: the one definition of its shape."""
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return [c for (c,) in rows]
