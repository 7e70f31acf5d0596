"""Loading data into the raw layer without a crawl: study CSVs and the synthetic cohort.

Each load is one run, written in one transaction: it lands whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from kic.study_csv import MEAN_COLUMNS, read_study_csv
from kic.synthetic import Population, Profile
from warehouse import raw
from warehouse.db import transaction


@dataclass(frozen=True)
class LoadResult:
    crawl_id: int
    accounts: int
    rejected: int
    posts: int = 0
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


def profile_rows(profile: Profile, crawl_id: int, fetched_at) -> tuple[dict, list[dict]]:
    """The raw.profiles row and raw.posts rows of one synthetic profile."""
    account = profile.account
    profile_row = {
        "crawl_id": crawl_id,
        "username": account.username,
        "user_id": account.user_id,
        "followers": profile.followers,
        "follows": profile.follows,
        "media_count": profile.media_count,
        "is_private": account.is_private,
        "is_verified": account.is_verified,
        "is_business": account.is_business,
        "hide_like_counts": account.hides_likes,
        "fetched_at": fetched_at,
    }
    post_rows = [
        {
            "crawl_id": crawl_id,
            "post_id": post.post_id,
            "username": account.username,
            "shortcode": post.shortcode,
            "kind": post.kind,
            "media_type": post.typename,
            "product_type": post.product_type,
            "likes": None if account.hides_likes else post.likes,
            "comments": post.comments,
            "views": post.views,
            "taken_at": post.taken_at,
            "is_pinned": post.is_pinned,
            "fetched_at": fetched_at,
        }
        for post in profile.posts
    ]
    return profile_row, post_rows


def write_synthetic_crawl(
    con: duckdb.DuckDBPyConnection, population: Population, on: date
) -> LoadResult:
    """Write what every account of the synthetic population shows on `on` as one crawl."""
    with transaction(con):
        crawl_id = raw.open_run(
            con, "synthetic", f"seed={population.seed}", on, accounts_requested=population.size
        )
        fetched_at = raw.utcnow()
        profiles, posts, outcomes = [], [], []
        for account in population.accounts:
            profile_row, post_rows = profile_rows(population.profile(account, on), crawl_id, fetched_at)
            profiles.append(profile_row)
            posts.extend(post_rows)
            outcomes.append(
                {
                    "crawl_id": crawl_id,
                    "username": account.username,
                    "status": "private" if account.is_private else "ok",
                    "fetched_at": fetched_at,
                }
            )
        raw.append(con, "profiles", profiles)
        raw.append(con, "posts", pd.DataFrame(posts).astype({"likes": "Int64", "views": "Int64"}))
        raw.append(con, "account_outcomes", outcomes)
        raw.close_run(con, crawl_id, "succeeded")
    return LoadResult(crawl_id, population.size, 0, posts=len(posts))
