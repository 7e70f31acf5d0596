"""Deriving features.influencer_features from the raw layer (the SQL is in sql/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd

from kic.errors import KicError
from warehouse.db import insert_frame, scalar, transaction

SQL_DIR = Path(__file__).parent / "sql"

# The newest day any readable crawl describes: the default feature date.
LATEST_DATA_DATE = "SELECT max(as_of_date) FROM staging.account_crawls"

# Raw data is newer than the features when a run closed after the last derivation.
FEATURES_ARE_STALE = """
SELECT coalesce(
    (SELECT max(finished_at) FROM raw.crawl_runs WHERE status IN ('succeeded', 'interrupted'))
        > (SELECT max(computed_at) FROM features.influencer_features),
    (SELECT count(*) FROM raw.crawl_runs WHERE status IN ('succeeded', 'interrupted')) > 0
)
"""

LATEST_FEATURE_DATE = "SELECT max(feature_date) FROM features.influencer_features"

CLUSTERABLE_FEATURES = """
SELECT username, er, active_rate, follower
FROM features.influencer_features
WHERE feature_date = ? AND is_clusterable
ORDER BY username
"""

FEATURE_SUMMARY = """
SELECT coalesce(not_clusterable_reason, 'clusterable') AS status, count(*) AS influencers
FROM features.influencer_features
WHERE feature_date = ?
GROUP BY ALL
ORDER BY influencers DESC
"""


@cache
def sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


@dataclass(frozen=True)
class FeatureSummary:
    feature_date: date
    influencers: int
    clusterable: int
    not_clusterable: dict[str, int] = field(default_factory=dict)


def latest_data_date(con: duckdb.DuckDBPyConnection) -> date | None:
    return scalar(con, LATEST_DATA_DATE)


def features_are_stale(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(scalar(con, FEATURES_ARE_STALE))


def feature_date_or_latest(con: duckdb.DuckDBPyConnection, feature_date: date | None) -> date:
    feature_date = feature_date or latest_data_date(con)
    if feature_date is None:
        raise KicError("no crawl or import in the warehouse yet: nothing to derive features from")
    return feature_date


def compute_features(con: duckdb.DuckDBPyConnection, feature_date: date) -> pd.DataFrame:
    """The feature rows of one date, computed in SQL, not yet stored."""
    return con.execute(sql("influencer_features"), {"feature_date": feature_date}).df()


def write_features(con: duckdb.DuckDBPyConnection, feature_date: date, rows: pd.DataFrame) -> None:
    """Replace the features of one date with `rows`, in one transaction."""
    with transaction(con):
        con.execute("DELETE FROM features.influencer_features WHERE feature_date = ?", [feature_date]).fetchall()
        insert_frame(con, "features.influencer_features", rows)


def derive_features(con: duckdb.DuckDBPyConnection, feature_date: date | None = None) -> FeatureSummary:
    """(Re)compute and store the features of one date; default: the latest data date."""
    feature_date = feature_date_or_latest(con, feature_date)
    write_features(con, feature_date, compute_features(con, feature_date))
    return summarize_features(con, feature_date)


def summarize_features(con: duckdb.DuckDBPyConnection, feature_date: date) -> FeatureSummary:
    counts = dict(con.execute(FEATURE_SUMMARY, [feature_date]).fetchall())
    clusterable = counts.pop("clusterable", 0)
    return FeatureSummary(feature_date, clusterable + sum(counts.values()), clusterable, counts)


def latest_feature_date(con: duckdb.DuckDBPyConnection) -> date | None:
    return scalar(con, LATEST_FEATURE_DATE)


def features_to_cluster(
    con: duckdb.DuckDBPyConnection, feature_date: date | None = None
) -> tuple[pd.DataFrame, date, FeatureSummary | None]:
    """The clusterable influencers of `feature_date`, by default of the latest features,
    derived first when raw data is newer than them (that derivation's summary is returned)."""
    derived = None
    if feature_date is None and features_are_stale(con):
        derived = derive_features(con)
    feature_date = feature_date or latest_feature_date(con)
    if feature_date is None:
        raise KicError("no data in the warehouse yet: run `kic run` or `kic import-csv` first")
    return load_clusterable(con, feature_date), feature_date, derived


def load_clusterable(con: duckdb.DuckDBPyConnection, feature_date: date) -> pd.DataFrame:
    """username, er, active_rate, follower of every clusterable influencer on that date."""
    return con.execute(CLUSTERABLE_FEATURES, [feature_date]).df()
