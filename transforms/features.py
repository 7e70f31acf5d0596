"""Deriving features.influencer_features from the staging layer (its SQL and contract are in sql/features/).

The feature rows of a date stay in DuckDB: validation reads them from the feature query a
chunk at a time (`FeatureStream`), and the write inserts them from the same query, minus
the rows validation quarantined (`insert_features`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from transforms.relations import relation
from warehouse.db import scalar, transaction
from warehouse.errors import KicError
from warehouse.quality import CHUNK_ROWS, chunks
from warehouse.snapshots import rows_fingerprint
from warehouse.vocabulary import DEFAULT_MAX_OBSERVATION_AGE_DAYS

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

# The influencers a recluster takes, numbered in the order it takes them: the snapshot is
# stored over this relation (warehouse.snapshots' `rows`).
CLUSTERABLE = "features.clusterable"
# Numbers only, in the order the snapshot writes them back (row_index).
CLUSTERABLE_FEATURES = f"""
SELECT er, active_rate, follower FROM {CLUSTERABLE} WHERE feature_date = ? ORDER BY row_index
"""

FEATURE_SUMMARY = """
SELECT coalesce(not_clusterable_reason, 'clusterable') AS status, count(*) AS influencers
FROM features.influencer_features
WHERE feature_date = ?
GROUP BY ALL
ORDER BY influencers DESC
"""

HOW_TO_REFRESH = "run the nightly-refresh deployment or `kic features`"

# A row's hash over every column but computed_at (which is the time of the query): the
# XOR of those over a date's rows, with their count, fingerprints the rows validation saw.
ROW_HASH = "hash(*COLUMNS(* EXCLUDE (computed_at)))"
FEATURE_ROWS_HASHED = f"SELECT *, {ROW_HASH} AS row_hash FROM ({{query}}) AS f"
# The write computes the rows once, into a temporary table: fingerprinted, then inserted.
COMPUTE_FEATURES = "CREATE OR REPLACE TEMP TABLE computed_features AS " + FEATURE_ROWS_HASHED
COMPUTED_FINGERPRINT = "SELECT count(*), coalesce(bit_xor(row_hash), 0) FROM computed_features"
# The rows to write: all but the quarantined usernames (a short list), matched NULL-safely.
INSERT_KEPT = """
INSERT INTO features.influencer_features BY NAME
SELECT f.* EXCLUDE (row_hash) FROM computed_features AS f
WHERE NOT EXISTS (SELECT 1 FROM unnest($quarantined::VARCHAR[]) AS q(username)
                  WHERE q.username IS NOT DISTINCT FROM f.username)
"""

Fingerprint = tuple[int, int]  # (rows, XOR of their row hashes)


def feature_query() -> str:
    """The feature query ($feature_date), to be wrapped as a subquery."""
    return relation("features.influencer_features").sql.strip().removesuffix(";")


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


class FeatureStream:
    """The feature rows of one date as the feature query gives them, a chunk at a time (none
    stored, none kept); once read through, `fingerprint` is that of the rows it gave.

    It holds `con` while it is read (see warehouse.quality.chunks).
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        feature_date: date,
        chunk_rows: int = CHUNK_ROWS,
        max_age_days: int = DEFAULT_MAX_OBSERVATION_AGE_DAYS,
    ):
        self.con, self.feature_date, self.chunk_rows = con, feature_date, chunk_rows
        self.max_age_days = max_age_days
        self.rows = 0
        self.hashes = 0
        self.done = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        self.rows, self.hashes, self.done = 0, 0, False
        query = FEATURE_ROWS_HASHED.format(query=feature_query())
        params = {"feature_date": self.feature_date, "max_age_days": self.max_age_days}
        for chunk in chunks(self.con, query, params, self.chunk_rows):
            hashes = chunk["row_hash"].to_numpy(dtype=np.uint64)
            self.hashes ^= int(np.bitwise_xor.reduce(hashes)) if len(hashes) else 0
            self.rows += len(chunk)
            yield chunk.drop(columns="row_hash")
        self.done = True

    @property
    def fingerprint(self) -> Fingerprint:
        if not self.done:
            raise RuntimeError("the feature rows were not read through: no fingerprint yet")
        return self.rows, self.hashes


def insert_features(
    con: duckdb.DuckDBPyConnection,
    feature_date: date,
    quarantined: list[str],
    validated: Fingerprint,
    memory_limit: str | None = None,
    max_age_days: int = DEFAULT_MAX_OBSERVATION_AGE_DAYS,
) -> int:
    """Replace the features of one date with the feature query's rows but the `quarantined`
    usernames, in one transaction, in SQL; return how many rows were written. An observation
    older than `max_age_days` is kept, not clusterable (`stale`).

    `validated` is the fingerprint of the rows validation read: if the query gives other rows
    now (another run validated a crawl since), nothing is written.

    The query runs once, into a temporary table, within DuckDB's `memory_limit` if given (its
    aggregates are the night's size: past the limit they spill); the insert then runs at
    DuckDB's default limit, for the table's PRIMARY KEY index must be in memory, cannot spill
    and grows with the whole feature history.
    """
    with transaction(con):
        if memory_limit is not None:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        try:
            params = {"feature_date": feature_date, "max_age_days": max_age_days}
            con.execute(COMPUTE_FEATURES.format(query=feature_query()), params).fetchall()
        finally:
            if memory_limit is not None:
                con.execute("RESET memory_limit")
        rows, hashes = con.execute(COMPUTED_FINGERPRINT).fetchall()[0]
        if (rows, int(hashes)) != tuple(validated):
            raise KicError(
                f"the features of {feature_date} changed since they were validated "
                f"({validated[0]} rows validated, {rows} now): derive them again"
            )
        con.execute("DELETE FROM features.influencer_features WHERE feature_date = ?", [feature_date]).fetchall()
        written = con.execute(
            INSERT_KEPT, {"quarantined": [None if pd.isna(u) else u for u in quarantined]}
        ).fetchall()[0][0]
        con.execute("DROP TABLE computed_features")
    return written


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
    arrays = {name: np.asarray(columns[name], dtype=np.float64) for name in ("er", "active_rate", "follower")}
    # Validation bounds them; a row written around it must stop here, not as a traceback in a fit.
    for name, values in arrays.items():
        if not np.isfinite(values).all():
            raise KicError(
                f"features of {feature_date}: {np.count_nonzero(~np.isfinite(values))} clusterable influencer(s)"
                f" with a missing or non-finite {name}; derive the features again (kic features --date {feature_date})"
            )
    return ClusterableFeatures(
        feature_date,
        arrays["er"],
        arrays["active_rate"],
        arrays["follower"],
        clusterable_fingerprint(con, feature_date),
    )


def clusterable_fingerprint(con: duckdb.DuckDBPyConnection, feature_date: date) -> str:
    """The fingerprint of a date's clusterable influencers, as their snapshot records it."""
    return rows_fingerprint(con, CLUSTERABLE, feature_date)
