"""Deriving features.influencer_features from the staging layer (the SQL is in sql/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from warehouse.db import insert_frame, scalar, transaction
from warehouse.errors import KicError
from warehouse.snapshots import clusterable_fingerprint

SQL_DIR = Path(__file__).parent / "sql"

# The newest day any readable (finished and validated) crawl describes: the default feature date.
LATEST_DATA_DATE = "SELECT max(as_of_date) FROM staging.account_crawls"

# What makes the latest features out of date: crawls not validated yet, or validated
# crawls that finished after the features were last derived.
STALENESS = """
SELECT
    (SELECT count(*) FROM staging.unvalidated_crawls) AS unvalidated,
    (SELECT count(*) FROM staging.readable_crawls
     WHERE finished_at > (SELECT coalesce(max(computed_at), '-infinity'::TIMESTAMPTZ)
                          FROM features.influencer_features)) AS newer
"""

LATEST_FEATURE_DATE = "SELECT max(feature_date) FROM features.influencer_features"

# Numbers only, in the order the snapshot writes them back (features.clusterable.row_index).
CLUSTERABLE_FEATURES = """
SELECT er, active_rate, follower FROM features.clusterable WHERE feature_date = ? ORDER BY row_index
"""

FEATURE_SUMMARY = """
SELECT coalesce(not_clusterable_reason, 'clusterable') AS status, count(*) AS influencers
FROM features.influencer_features
WHERE feature_date = ?
GROUP BY ALL
ORDER BY influencers DESC
"""

HOW_TO_REFRESH = "run the nightly-refresh deployment or `kic features`"


@cache
def sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class ClusterableFeatures:
    """The clusterable influencers of one date as arrays, in features.clusterable's row_index order."""

    feature_date: date
    er: np.ndarray
    active_rate: np.ndarray
    follower: np.ndarray
    fingerprint: str

    def __len__(self) -> int:
        return len(self.er)


@dataclass(frozen=True)
class FeatureSummary:
    feature_date: date
    influencers: int
    clusterable: int
    not_clusterable: dict[str, int] = field(default_factory=dict)


def latest_data_date(con: duckdb.DuckDBPyConnection) -> date | None:
    return scalar(con, LATEST_DATA_DATE)


def staleness(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the latest features are out of date, or None when they are not."""
    unvalidated, newer = con.execute(STALENESS).fetchall()[0]
    if unvalidated:
        return f"{unvalidated} crawl(s) or import(s) not validated yet"
    if newer:
        return f"{newer} validated crawl(s) or import(s) newer than the latest features"
    return None


def feature_date_or_latest(con: duckdb.DuckDBPyConnection, feature_date: date | None) -> date:
    feature_date = feature_date or latest_data_date(con)
    if feature_date is None:
        raise KicError("no validated crawl or import in the warehouse yet: nothing to derive features from")
    return feature_date


def compute_features(con: duckdb.DuckDBPyConnection, feature_date: date) -> pd.DataFrame:
    """The feature rows of one date, computed in SQL, not yet stored."""
    return con.execute(sql("influencer_features"), {"feature_date": feature_date}).df()


def write_features(con: duckdb.DuckDBPyConnection, feature_date: date, rows: pd.DataFrame) -> None:
    """Replace the features of one date with `rows`, in one transaction."""
    with transaction(con):
        con.execute("DELETE FROM features.influencer_features WHERE feature_date = ?", [feature_date]).fetchall()
        insert_frame(con, "features.influencer_features", rows)


def summarize_features(con: duckdb.DuckDBPyConnection, feature_date: date) -> FeatureSummary:
    counts = dict(con.execute(FEATURE_SUMMARY, [feature_date]).fetchall())
    clusterable = counts.pop("clusterable", 0)
    return FeatureSummary(feature_date, clusterable + sum(counts.values()), clusterable, counts)


def latest_feature_date(con: duckdb.DuckDBPyConnection) -> date | None:
    return scalar(con, LATEST_FEATURE_DATE)


def feature_date_to_cluster(con: duckdb.DuckDBPyConnection, feature_date: date | None) -> date:
    """The feature date to cluster: the one asked for, else the latest, refusing stale features.

    Reading never derives: stale features are an error that says what to run.
    """
    if feature_date is not None:
        if not scalar(con, "SELECT count(*) FROM features.influencer_features WHERE feature_date = ?", [feature_date]):
            raise KicError(f"no features for {feature_date}: {HOW_TO_REFRESH} for that date")
        return feature_date
    latest = latest_feature_date(con)
    why = staleness(con)
    if latest is None and why:
        raise KicError(f"no features yet ({why}): {HOW_TO_REFRESH}")
    if latest is None:
        raise KicError("no data in the warehouse yet: run `kic run`, `kic crawl` or `kic import-csv` first")
    if why:
        raise KicError(f"features are stale ({why}; latest features are of {latest}): {HOW_TO_REFRESH}")
    return latest


def load_clusterable(con: duckdb.DuckDBPyConnection, feature_date: date) -> ClusterableFeatures:
    """er, active_rate and follower of every clusterable influencer on that date, as arrays."""
    columns = con.execute(CLUSTERABLE_FEATURES, [feature_date]).fetchnumpy()
    return ClusterableFeatures(
        feature_date,
        np.asarray(columns["er"], dtype=np.float64),
        np.asarray(columns["active_rate"], dtype=np.float64),
        np.asarray(columns["follower"], dtype=np.float64),
        clusterable_fingerprint(con, feature_date),
    )
