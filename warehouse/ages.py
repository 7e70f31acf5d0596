"""How old a snapshot's numbers are: per persona (cluster), the oldest observation its members
were read from, their median age, and the share older than a week; and the same for the whole
cohort. Read from the features of the snapshot's feature date (observed_on)."""

from __future__ import annotations

import duckdb
import pandas as pd

OLDER_THAN_DAYS = 7

# Grain: one row per cluster of snapshot ? and one for the whole cohort (cluster NULL).
OBSERVATION_AGES = f"""
SELECT a.cluster,
       min(f.observed_on)                                                   AS oldest_observed_on,
       median(s.feature_date - f.observed_on)                               AS median_age_days,
       avg(CASE WHEN s.feature_date - f.observed_on > {OLDER_THAN_DAYS} THEN 1.0 ELSE 0.0 END)
                                                                            AS older_than_7_days
FROM clusters.assignments AS a
JOIN clusters.snapshots AS s USING (version)
JOIN features.influencer_features AS f ON f.username = a.username AND f.feature_date = s.feature_date
WHERE a.version = ?
GROUP BY ROLLUP (a.cluster)
ORDER BY a.cluster NULLS LAST
"""


def observation_ages(con: duckdb.DuckDBPyConnection, version: int) -> pd.DataFrame:
    """cluster (NULL: the cohort), oldest_observed_on, median_age_days, older_than_7_days (a share)."""
    return con.execute(OBSERVATION_AGES, [version]).df()


def with_ages(table: pd.DataFrame, ages: pd.DataFrame) -> pd.DataFrame:
    """A cluster table with each cluster's observation ages beside it."""
    per_cluster = ages.dropna(subset=["cluster"]).astype({"cluster": "int64"})
    return table.merge(per_cluster, on="cluster", how="left")


def cohort_line(ages: pd.DataFrame) -> str:
    """`observed 2026-05-20 to the feature date; 12 % more than 7 days before it`."""
    cohort = ages[ages["cluster"].isna()]
    if cohort.empty or pd.isna(cohort.iloc[0]["oldest_observed_on"]):
        return "observation dates unknown (features from before they were recorded)"
    row = cohort.iloc[0]
    oldest = pd.Timestamp(row["oldest_observed_on"]).date()
    return (
        f"numbers observed from {oldest} on (median {row['median_age_days']:.0f} days before the feature date); "
        f"{row['older_than_7_days']:.0%} of the cohort observed more than {OLDER_THAN_DAYS} days before it"
    )
