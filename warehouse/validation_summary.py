"""What the offline validation summary shows, read from the quality.* tables (bounded: the
latest validations only, failures grouped by expectation, never one row per influencer)."""

from __future__ import annotations

import duckdb
import pandas as pd

RECENT_VALIDATIONS = 50

VALIDATION_RUNS = f"""
SELECT validation_id, strftime(run_at, '%Y-%m-%d %H:%M:%S %Z') AS run_at, suite, crawl_id,
       CAST(feature_date AS VARCHAR) AS feature_date, rows_validated, expectations,
       passed, failed, rows_quarantined, table_level_ok
FROM quality.validation_runs ORDER BY quality.validation_runs.run_at DESC, validation_id LIMIT {RECENT_VALIDATIONS}
"""
# Grain: one row per failed expectation of the recent validations.
FAILED_EXPECTATIONS = f"""
SELECT r.validation_id, r.suite, e.expectation, e.level, e.unexpected_count, e.observed_value
FROM quality.expectation_results AS e
JOIN (SELECT * FROM quality.validation_runs ORDER BY run_at DESC, validation_id LIMIT {RECENT_VALIDATIONS}) AS r
  USING (validation_id)
WHERE NOT e.success
ORDER BY r.run_at DESC, r.validation_id, e.expectation
"""


def read_validation_summary(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recent validation runs and their failed expectations."""
    return con.execute(VALIDATION_RUNS).df(), con.execute(FAILED_EXPECTATIONS).df()
