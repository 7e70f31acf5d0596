"""Loading data into the raw layer without a crawl: the study's CSVs.

Each load is one run, written in one transaction: it lands whole or not at all. Like a
crawl's, its rows reach staging only once validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.study_csv import MEAN_COLUMNS, StudyCsv
from warehouse import raw
from warehouse.db import transaction
from warehouse.util import utcnow
from warehouse.vocabulary import AccountStatus, RunStatus, Source


@dataclass(frozen=True)
class LoadResult:
    crawl_id: int
    accounts: int
    rejected: int
    note: str | None = None
    encoding: str = "utf-8"  # the codec the CSV was read with


def store_study_csv(con: duckdb.DuckDBPyConnection, path: Path, parsed: StudyCsv, as_of: date) -> LoadResult:
    """Store a parsed study-layout CSV of per-account means as one run, with its rejected rows."""
    rows = parsed.accepted
    note = None
    if parsed.ignored_columns:
        note = f"ignored column(s): {', '.join(parsed.ignored_columns)}"
    with transaction(con):
        crawl_id = raw.open_run(con, Source.CSV, str(path), as_of, accounts_requested=parsed.rows)
        fetched_at = utcnow()
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
                    "status": is_private.map({True: AccountStatus.PRIVATE, False: AccountStatus.OK}),
                }
            ),
        )
        raw.append(con, "rejected_rows", parsed.rejected.assign(**stamp))
        raw.close_run(
            con,
            crawl_id,
            RunStatus.SUCCEEDED,
            stats={"rows": parsed.rows, "accepted": len(rows), "rejected": len(parsed.rejected)},
            message=note,
        )
    return LoadResult(crawl_id, len(rows), len(parsed.rejected), note=note, encoding=parsed.encoding)
