"""Exporting a snapshot's influencers to a file a marketer opens: csv, parquet or xlsx.

The file is written under a temporary name beside the target and renamed into place once
complete, so a failed export leaves nothing behind and never replaces a file with a part
of one. csv and parquet are written by DuckDB's COPY, streamed at any size, with the values
as stored (ER and active_rate in percent, every digit); xlsx, a workbook for people (a
summary sheet and a sheet per persona, renderers/workbook.py), streamed from the same query
up to Excel's row limit per sheet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd

from warehouse.db import scalar, views_fingerprint
from warehouse.errors import KicError
from warehouse.snapshots import resolve_version
from warehouse.util import literal, write_atomically

FORMATS = ("csv", "parquet", "xlsx")
# A worksheet's rows in Excel, the header row included.
EXCEL_MAX_ROWS = 1_048_576

# Grain: one row per influencer of snapshot $version (of the personas in $personas, unless NULL),
# best persona first, then best fit first (clusters.persona_fit). Key: username. Followers,
# tier, growth and the jump flag are those of the snapshot's feature date
# (features.influencer_history_between); observed_on is the day they were observed.
EXPORT_ROWS = """
SELECT
    a.username,
    'https://www.instagram.com/' || a.username || '/' AS profile_url,
    a.persona,
    p.persona_id,
    fit.fit_rank,
    fit.fit_score,
    h.follower                AS followers,
    follower_tier(h.follower) AS follower_tier,
    a.er                      AS er_pct,
    a.active_rate             AS active_rate_pct,
    h.follower_growth_7d,
    h.follower_growth_7d_pct,
    h.follower_growth_28d,
    h.follower_growth_28d_pct,
    h.follower_jump,
    h.observed_on,
    CAST($feature_date AS DATE) AS feature_date,
    CAST($version AS INTEGER) AS snapshot_version
FROM clusters.assignments AS a
JOIN clusters.profiles AS p USING (version, cluster)
JOIN clusters.persona_fit($version) AS fit USING (username)
LEFT JOIN features.influencer_history_between($feature_date, $feature_date) AS h USING (username)
WHERE a.version = $version AND ($personas IS NULL OR list_contains($personas, a.persona))
ORDER BY p.rank, fit.fit_rank
"""
EXPORT_COUNT = """
SELECT count(*) FROM clusters.assignments
WHERE version = $version AND ($personas IS NULL OR list_contains($personas, persona))
"""
# Grain: one row per persona exported (every persona of the snapshot, or the one asked for),
# best first. Key: persona_id.
PERSONA_SUMMARY = """
SELECT p.rank, p.persona, p.persona_id, p.size AS influencers, p.median_follower AS median_followers,
       p.follower_tier, p.median_active_rate AS median_active_rate_pct, p.median_er AS median_er_pct,
       p.mean_active_rate AS mean_active_rate_pct, p.mean_er AS mean_er_pct, p.active_rate_level, p.er_level,
       seen.oldest_observed_on, CAST($feature_date AS DATE) AS feature_date,
       CAST($version AS INTEGER) AS snapshot_version
FROM clusters.profiles AS p
LEFT JOIN (
    SELECT a.cluster, min(o.observed_on) AS oldest_observed_on
    FROM clusters.assignments AS a
    JOIN features.observations($feature_date) AS o USING (username)
    WHERE a.version = $version
    GROUP BY a.cluster
) AS seen USING (cluster)
WHERE p.version = $version AND ($personas IS NULL OR list_contains($personas, p.persona))
ORDER BY p.rank
"""
# The persona with the most influencers to export: each persona has a sheet of the workbook.
LARGEST_PERSONA = """
SELECT persona, size FROM clusters.profiles
WHERE version = $version AND ($personas IS NULL OR list_contains($personas, persona))
ORDER BY size DESC LIMIT 1
"""
SNAPSHOT_FEATURE_DATE = "SELECT feature_date FROM clusters.snapshots WHERE version = ?"
# The personas of a snapshot, best first, with their ids.
SNAPSHOT_PERSONAS = "SELECT persona, persona_id FROM clusters.profiles WHERE version = ? ORDER BY rank"
QUALIFIER = " · "  # between a persona's base name and what tells it apart (models/personas.py)
APPLIED_VIEWS = "SELECT max(fingerprint) FROM meta.applied_views"


@dataclass(frozen=True)
class Export:
    path: Path
    version: int
    persona: str | None
    rows: int


Progress = Callable[[int, int], None]  # (rows written, rows in all)


class WriteWorkbook(Protocol):
    """Writes the xlsx workbook (renderers.workbook): a summary sheet, then a sheet per persona,
    from the summary's rows and the export's rows (a result to fetch from); `progress(rows
    written)`, if given, as it goes."""

    def __call__(
        self,
        summary: pd.DataFrame,
        rows: duckdb.DuckDBPyConnection,
        path: Path,
        progress: Callable[[int], None] | None,
    ) -> None: ...


def export_snapshot(
    con: duckdb.DuckDBPyConnection,
    version: int | None,
    persona: str | None,
    fmt: str,
    output: Path,
    write_workbook: WriteWorkbook | None = None,
    progress: Progress | None = None,
    *,
    views: str,
) -> Export:
    """Write one row per influencer of snapshot `version` (default: the latest), of `persona`
    if given, to `output` in `fmt`, atomically; xlsx through `write_workbook`. The rows are
    read through the views and macros of `views`: a database with others is refused."""
    if fmt not in FORMATS:
        raise KicError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    require_current_views(con, views)
    version = resolve_version(con, version)
    personas = chosen_personas(con, version, persona)
    params = {"version": version, "personas": personas, "feature_date": scalar(con, SNAPSHOT_FEATURE_DATE, [version])}
    rows = scalar(con, EXPORT_COUNT, {"version": version, "personas": personas})
    if fmt == "xlsx":
        largest, size = con.execute(LARGEST_PERSONA, {"version": version, "personas": personas}).fetchone()
        if size + 1 > EXCEL_MAX_ROWS:
            raise KicError(
                f"persona {largest!r} of snapshot {version} has {size:,} influencers to export, more than an "
                f"Excel sheet holds ({EXCEL_MAX_ROWS:,} rows with the header): export csv or parquet"
            )

        def write_to(path: Path) -> None:
            say = None if progress is None else (lambda done: progress(done, rows))
            summary = con.execute(PERSONA_SUMMARY, params).df()
            write_workbook(summary, con.execute(EXPORT_ROWS, params), path, say)

    else:

        def write_to(path: Path) -> None:
            options = "FORMAT csv, HEADER" if fmt == "csv" else "FORMAT parquet"
            con.execute(f"COPY ({EXPORT_ROWS}) TO {literal(path)} ({options})", params).fetchall()

    write_atomically(output, write_to)
    return Export(output, version, persona, rows)


def chosen_personas(con: duckdb.DuckDBPyConnection, version: int, persona: str | None) -> list[str] | None:
    """The full names `persona` picks in a snapshot: a full name, a base name (every persona
    of it, e.g. "Lowest benefit" for "Lowest benefit · micro" and "· nano") or a persona id;
    None for every persona. KicError, listing the snapshot's personas, if it picks none."""
    if persona is None:
        return None
    named = con.execute(SNAPSHOT_PERSONAS, [version]).fetchall()
    wanted = persona.strip()
    picked = [name for name, _ in named if name == wanted]
    picked = picked or [name for name, pid in named if wanted.isdigit() and pid == int(wanted)]
    picked = picked or [name for name, _ in named if name.split(QUALIFIER)[0].casefold() == wanted.casefold()]
    if not picked:
        listed = ", ".join(f"{name} (id {pid})" for name, pid in named)
        raise KicError(f"no persona {persona!r} in snapshot {version}; its personas: {listed}")
    return picked


def require_current_views(con: duckdb.DuckDBPyConnection, views: str) -> None:
    """Refuse a copy published by another kic: its views and macros may not be `views`
    (the ones this kic's exports and reports read)."""
    if scalar(con, APPLIED_VIEWS) != views_fingerprint(views):
        raise KicError(
            f"the views of {database_path(con)} are not this kic's: run any writing command "
            "(e.g. `kic features`) to publish them"
        )


def database_path(con: duckdb.DuckDBPyConnection) -> str:
    return scalar(con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
