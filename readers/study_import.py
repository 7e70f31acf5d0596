"""An import of the study's CSV lands as a run of one shard, as a crawl does.

Its rows then reach raw.* through the one loader (warehouse/loading.py). That loader writes the
whole run in one transaction, so the import is stored whole or not at all. Like a crawl's rows,
an import's reach staging only once validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from readers.study_csv import MEAN_COLUMNS, StudyCsv
from warehouse.landing import Landing, new_crawl_key
from warehouse.util import utcnow
from warehouse.vocabulary import AccountStatus, RunStatus, Source

SHARD = "import"  # an import is one shard, written as one batch
BATCH = "00000000-000001"  # <attempt>-<number>: an import has one attempt and one batch


@dataclass(frozen=True)
class LandedImport:
    crawl_key: str  # its name in the landing area, and in raw.crawl_runs once loaded
    rejected: int  # rows of the CSV rejected, with their reasons (what the load stores is in its summary)
    note: str | None = None
    encoding: str = "utf-8"  # the codec the CSV was read with


def import_frames(parsed: StudyCsv, fetched_at: datetime) -> dict[str, pd.DataFrame]:
    """The raw rows of a parsed study CSV, by raw table (without crawl_id: the loader adds it)."""
    rows = parsed.accepted
    is_private = rows["open_account"].eq(0)
    return {
        "profiles": pd.DataFrame(
            {
                "username": rows["username"],
                "followers": rows["follower"].astype("int64"),
                "follows": rows["follow"].astype("int64"),
                "media_count": rows["post"].astype("int64"),
                "is_private": is_private,
                "is_verified": rows["official_account"].eq(1),
                "fetched_at": fetched_at,
            }
        ),
        "imported_media_means": rows[["username", *MEAN_COLUMNS]].assign(fetched_at=fetched_at),
        "rejected_rows": parsed.rejected.assign(fetched_at=fetched_at),
        "account_outcomes": pd.DataFrame(
            {
                "username": rows["username"],
                "status": is_private.map({True: AccountStatus.PRIVATE, False: AccountStatus.OK}),
                "fetched_at": fetched_at,
            }
        ),
    }


def land_study_csv(landing: Landing, path: Path, parsed: StudyCsv, as_of: date) -> LandedImport:
    """Land a parsed study CSV as one closed run: its request, its one batch, its end.

    A landing cut short (a full disk) is removed, so no loader ever finds half an import.
    """
    note = f"ignored column(s): {', '.join(parsed.ignored_columns)}" if parsed.ignored_columns else None
    crawl_key = new_crawl_key(Source.CSV, as_of)
    usernames = {SHARD: parsed.accepted["username"]}
    try:
        # Rejected rows count as requested (and failed): requested = stored + rejected.
        landing.open_crawl(crawl_key, Source.CSV, str(path), as_of, usernames, accounts_requested=parsed.rows)
        landing.put_batch(crawl_key, SHARD, BATCH, import_frames(parsed, utcnow()))
        stats = {"rows": parsed.rows, "accepted": len(parsed.accepted), "rejected": len(parsed.rejected)}
        landing.close_shard(crawl_key, SHARD, RunStatus.SUCCEEDED, note, stats)
    except BaseException:
        if landing.fs.exists(landing.path(crawl_key)):
            landing.remove_crawl(crawl_key)
        raise
    return LandedImport(crawl_key, len(parsed.rejected), note, parsed.encoding)
