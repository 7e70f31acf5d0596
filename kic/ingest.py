"""Loading data into the raw layer without a crawl: the study's CSVs.

Each load is one run, written in one transaction: it lands whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from kic.study_csv import MEAN_COLUMNS, read_study_csv
from warehouse import raw
from warehouse.db import transaction


@dataclass(frozen=True)
class LoadResult:
    crawl_id: int
    accounts: int
    rejected: int
    note: str | None = None


def import_study_csv(con: duckdb.DuckDBPyConnection, path: Path, as_of: date) -> LoadResult:
    """Import a study-layout CSV of per-account means as one run; reject bad rows with reasons."""
    parsed = read_study_csv(path)  # raises before anything is written
    rows = parsed.accepted
    note = None
    if parsed.ignored_columns:
        note = f"ignored column(s): {', '.join(parsed.ignored_columns)}"
    with transaction(con):
        crawl_id = raw.open_run(con, "csv", str(path), as_of, accounts_requested=parsed.rows)
        fetched_at = raw.utcnow()
        stamp = {"crawl_id": crawl_id, "fetched_at": fetched_at}
        is_private = rows["open_account"].eq(0)
        raw.append(
            con,
            "profiles",
            pd.DataFrame(
                {
                    **stamp,
                    "username": rows["username"],
                    "followers": rows["follower"].astype("int64"),
                    "follows": rows["follow"].astype("int64"),
                    "media_count": rows["post"].astype("int64"),
                    "is_private": is_private,
                    "is_verified": rows["official_account"].eq(1),
                }
            ),
        )
        raw.append(con, "imported_media_means", rows[["username", *MEAN_COLUMNS]].assign(**stamp))
        raw.append(
            con,
            "account_outcomes",
            pd.DataFrame(
                {
                    **stamp,
                    "username": rows["username"],
                    "status": is_private.map({True: "private", False: "ok"}),
                }
            ),
        )
        raw.append(con, "rejected_rows", parsed.rejected.assign(**stamp))
        raw.close_run(
            con,
            crawl_id,
            "succeeded",
            stats={"rows": parsed.rows, "accepted": len(rows), "rejected": len(parsed.rejected)},
            message=note,
        )
    return LoadResult(crawl_id, len(rows), len(parsed.rejected), note=note)
