import os
import subprocess
import sys
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from kic.synthetic import Population
from warehouse import raw
from warehouse.db import connect, transaction

REPO = Path(__file__).resolve().parents[1]
# The study's public data, shared by every session and CI; absent on a user's fresh clone.
STUDY_DATA = Path(os.environ.get("KIC_STUDY_DATA", REPO.parent / "shared" / "seed" / "study-data"))
FETCHED_AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture
def study_file():
    def get(name: str) -> Path:
        path = STUDY_DATA / name
        if not path.is_file():
            pytest.skip(f"study data not available ({path})")
        return path

    return get


@pytest.fixture
def warehouse_path(tmp_path) -> Path:
    return tmp_path / "warehouse.duckdb"


@pytest.fixture
def con(warehouse_path):
    with connect(warehouse_path) as connection:
        yield connection


def add_crawl(con, on: date, profiles: list[dict], posts: list[dict] = (), status="succeeded",
              outcomes: dict[str, str] | None = None, source="web") -> int:
    """Write a crafted crawl: profile dicts need username (+ any raw.profiles column)."""
    outcomes = outcomes or {}
    crawl_id = raw.open_run(con, source, "test", on, accounts_requested=len(profiles))
    stamp = {"crawl_id": crawl_id, "fetched_at": FETCHED_AT}
    raw.append(con, "profiles", [
        {"followers": 1000, "follows": 10, "media_count": 50, "is_private": False, **p, **stamp}
        for p in profiles
    ])
    raw.append(con, "posts", [
        {"is_pinned": False, "views": None, "likes": None, **p, **stamp} for p in posts
    ])
    raw.append(con, "account_outcomes", [
        {"username": p["username"], "status": outcomes.get(p["username"], "private" if p.get("is_private") else "ok"), **stamp}
        for p in profiles
    ])
    raw.close_run(con, crawl_id, status)
    return crawl_id


# Prefect runs started by tests (the main job runs its flows on an ephemeral server)
# are recorded here, never in the user's ~/.prefect.
PREFECT_HOME = tempfile.mkdtemp(prefix="kic-tests-prefect-")


def subprocess_env(extra: dict | None = None) -> dict:
    env = {**os.environ, "PREFECT_HOME": PREFECT_HOME, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **(extra or {})}
    # Let child processes cache bytecode even where the sandbox forbids it (it costs each
    # CLI start several seconds of compiling scikit-learn and SciPy otherwise).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def kic(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `kic` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "kic", *args],
        capture_output=True,
        text=True,
        env=subprocess_env(env),
        cwd=cwd,
        timeout=600,
    )


def profile_rows(profile, crawl_id: int, fetched_at) -> tuple[dict, list[dict]]:
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


def synthetic_crawl(con, population: Population, on: date) -> int:
    """Write what every account of a synthetic population shows on `on` as one crawl, straight
    into raw (what a crawl of the sandbox stores, without the HTTP round trips)."""
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
    return crawl_id
