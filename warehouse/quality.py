"""Storing validation results and quarantined rows (the `quality` schema)."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from transforms.validation import SuiteValidation
from warehouse.db import insert_frame, transaction
from warehouse.raw import utcnow

QUARANTINE_COLUMNS = ["validation_id", "table_name", "crawl_id", "username", "post_id", "feature_date",
                      "row_key", "expectation"]

PREVIOUS_CRAWL_COUNTS = """
SELECT
    (SELECT count(*) FROM raw.profiles p WHERE p.crawl_id = r.crawl_id) AS profiles,
    (SELECT count(*) FROM raw.posts p WHERE p.crawl_id = r.crawl_id)    AS posts
FROM raw.crawl_runs r
WHERE r.crawl_id < ? AND r.source = ? AND r.status IN ('succeeded', 'interrupted')
ORDER BY r.crawl_id DESC
LIMIT 1
"""
PREVIOUS_FEATURE_COUNT = """
SELECT count(*) FROM features.influencer_features
WHERE feature_date = (SELECT max(feature_date) FROM features.influencer_features WHERE feature_date < ?)
"""


def store_validations(
    con: duckdb.DuckDBPyConnection,
    validations: list[SuiteValidation],
    quarantine: pd.DataFrame,
    crawl_id: int | None = None,
    feature_date: date | None = None,
) -> None:
    """Record suite runs, their expectation results and the rows they quarantine, together."""
    run_at = utcnow()
    runs = pd.DataFrame([
        {
            "validation_id": v.validation_id,
            "run_at": run_at,
            "suite": v.suite,
            "crawl_id": crawl_id,
            "feature_date": feature_date,
            "rows_validated": v.rows_validated,
            "expectations": len(v.expectations),
            "passed": len(v.expectations) - len(v.failed),
            "failed": len(v.failed),
            "rows_quarantined": int((quarantine["validation_id"] == v.validation_id).sum()) if len(quarantine) else 0,
            "table_level_ok": v.table_level_ok,
            "data_docs": v.data_docs,
        }
        for v in validations
    ]).astype({"crawl_id": "Int64"})
    results = pd.DataFrame([
        {
            "validation_id": v.validation_id,
            "expectation": e.expectation,
            "level": e.level,
            "success": e.success,
            "unexpected_count": e.unexpected_count,
            "observed_value": e.observed_value,
        }
        for v in validations
        for e in v.expectations
    ]).astype({"unexpected_count": "Int64"})
    with transaction(con):
        insert_frame(con, "quality.validation_runs", runs)
        insert_frame(con, "quality.expectation_results", results)
        if len(quarantine):
            insert_frame(con, "quality.quarantined_rows", quarantine[QUARANTINE_COLUMNS])


def quarantine_frame(validation: SuiteValidation, rows: pd.DataFrame, table_name: str, key: list[str]) -> pd.DataFrame:
    """One row per (failing row, expectation) of `rows` (positions as validated)."""
    records = []
    for position, expectations in validation.failing_rows().items():
        row = rows.iloc[position]
        for expectation in expectations:
            records.append({
                "validation_id": validation.validation_id,
                "table_name": table_name,
                "crawl_id": row.get("crawl_id"),
                "username": row.get("username"),
                "post_id": row.get("post_id"),
                "feature_date": row.get("feature_date"),
                "row_key": ", ".join(f"{k}={row[k]}" for k in key),
                "expectation": expectation,
            })
    frame = pd.DataFrame(records, columns=QUARANTINE_COLUMNS)
    return frame.astype({"crawl_id": "Int64"}).drop_duplicates(subset=["validation_id", "table_name", "row_key", "expectation"])


def previous_crawl_counts(con: duckdb.DuckDBPyConnection, crawl_id: int, source: str) -> tuple[int, int] | None:
    rows = con.execute(PREVIOUS_CRAWL_COUNTS, [crawl_id, source]).fetchall()
    return rows[0] if rows else None


def previous_feature_count(con: duckdb.DuckDBPyConnection, feature_date: date) -> int | None:
    count = con.execute(PREVIOUS_FEATURE_COUNT, [feature_date]).fetchall()[0][0]
    return count or None
