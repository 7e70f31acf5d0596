"""Exporting a snapshot's influencers to a file a marketer opens: csv, parquet or xlsx.

The file is written under a temporary name beside the target and renamed into place once
complete, so a failed export leaves nothing behind and never replaces a file with a part
of one. csv and parquet are written by DuckDB's COPY, streamed at any size; xlsx through
XlsxWriter's constant_memory mode, which holds one row at a time, up to Excel's row limit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.db import first_line, scalar, views_fingerprint
from warehouse.errors import KicError, duckdb_errno, os_refusal
from warehouse.publish import literal
from warehouse.snapshots import resolve_version

FORMATS = ("csv", "parquet", "xlsx")
# A worksheet's rows in Excel, the header row included.
EXCEL_MAX_ROWS = 1_048_576
XLSX_BATCH_ROWS = 10_000

# Grain: one row per influencer of snapshot $version (of persona $persona, unless NULL),
# best persona first. Key: username. Followers, tier, growth and the jump flag are those of
# the snapshot's feature date (features.influencer_history_between, warehouse/views/);
# observed_on is the day they were observed (the crawl read for that date).
EXPORT_ROWS = """
SELECT
    a.username,
    'https://www.instagram.com/' || a.username || '/' AS profile_url,
    a.persona,
    h.follower                AS followers,
    follower_tier(h.follower) AS follower_tier,
    a.er                      AS er_pct,
    a.active_rate             AS active_rate_pct,
    h.follower_growth_7d,
    h.follower_growth_7d_pct,
    h.follower_growth_28d,
    h.follower_growth_28d_pct,
    h.follower_jump,
    h.observed_on::VARCHAR    AS observed_on  -- text (YYYY-MM-DD): a date in every format, Excel's included
FROM clusters.assignments AS a
JOIN clusters.profiles AS p USING (version, cluster)
LEFT JOIN features.influencer_history_between($feature_date, $feature_date) AS h USING (username)
WHERE a.version = $version AND ($persona IS NULL OR a.persona = $persona)
ORDER BY p.rank, a.username
"""
EXPORT_COUNT = """
SELECT count(*) FROM clusters.assignments
WHERE version = $version AND ($persona IS NULL OR persona = $persona)
"""
SNAPSHOT_FEATURE_DATE = "SELECT feature_date FROM clusters.snapshots WHERE version = ?"
# The personas of a snapshot, best first (two clusters can share one).
SNAPSHOT_PERSONAS = "SELECT persona FROM clusters.profiles WHERE version = ? GROUP BY persona ORDER BY min(rank)"
APPLIED_VIEWS = "SELECT max(fingerprint) FROM meta.applied_views"


@dataclass(frozen=True)
class Export:
    path: Path
    version: int
    persona: str | None
    rows: int


def export_snapshot(
    con: duckdb.DuckDBPyConnection, version: int | None, persona: str | None, fmt: str, output: Path
) -> Export:
    """Write one row per influencer of snapshot `version` (default: the latest), of `persona`
    if given, to `output` in `fmt`, atomically."""
    if fmt not in FORMATS:
        raise KicError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if scalar(con, APPLIED_VIEWS) != views_fingerprint():
        raise KicError(
            f"the views of {database_path(con)} are not this kic's: run any writing command "
            "(e.g. `kic features`) to publish them"
        )
    version = resolve_version(con, version)
    personas = [name for (name,) in con.execute(SNAPSHOT_PERSONAS, [version]).fetchall()]
    if persona is not None and persona not in personas:
        raise KicError(f"no persona {persona!r} in snapshot {version}; its personas: {', '.join(personas)}")
    params = {"version": version, "persona": persona, "feature_date": scalar(con, SNAPSHOT_FEATURE_DATE, [version])}
    rows = scalar(con, EXPORT_COUNT, {"version": version, "persona": persona})
    if fmt == "xlsx" and rows + 1 > EXCEL_MAX_ROWS:
        raise KicError(
            f"snapshot {version} has {rows:,} influencers to export, more than an Excel sheet holds "
            f"({EXCEL_MAX_ROWS:,} rows with the header): export csv or parquet, or one --persona"
        )
    write_atomically(output, lambda path: write(con, params, fmt, path))
    return Export(output, version, persona, rows)


def write(con: duckdb.DuckDBPyConnection, params: dict, fmt: str, path: Path) -> None:
    if fmt == "xlsx":
        write_xlsx(con.execute(EXPORT_ROWS, params), path)
    else:
        options = "FORMAT csv, HEADER" if fmt == "csv" else "FORMAT parquet"
        con.execute(f"COPY ({EXPORT_ROWS}) TO {literal(path)} ({options})", params).fetchall()


def write_xlsx(result: duckdb.DuckDBPyConnection, path: Path) -> None:
    """One sheet, a header row, then the rows in batches. XlsxWriter's constant_memory mode keeps
    one row in memory; its temporary files go in a folder beside the output, removed after."""
    import xlsxwriter  # imported here: only xlsx exports need it

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        workbook = xlsxwriter.Workbook(
            str(path),
            # Values as they are: no text read as a number, a formula or a link.
            {
                "constant_memory": True,
                "tmpdir": scratch,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        try:
            sheet = workbook.add_worksheet("influencers")
            sheet.write_row(0, 0, [column for column, *_ in result.description])
            written = 1
            # The format is written cell by cell: this loop is the library's interface, and
            # bounded by Excel's row limit (checked before).
            while batch := result.fetchmany(XLSX_BATCH_ROWS):
                for row in batch:
                    sheet.write_row(written, 0, row)
                    written += 1
            workbook.close()
        except xlsxwriter.exceptions.XlsxWriterException as exc:  # e.g. FileCreateError, wrapping the OS's
            raise OSError(f"{type(exc).__name__}: {exc}") from exc


def write_atomically(output: Path, write_to) -> None:
    """Call `write_to(temporary path)` beside `output`, then rename it to `output`; on any
    failure remove the temporary file and leave `output` as it was."""
    output = Path(output)
    if not output.parent.is_dir():
        raise KicError(f"cannot write {output}: no folder {output.parent}")
    if output.is_dir():
        raise KicError(f"cannot write {output}: it is a folder")
    temporary = output.with_name(f".{output.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write_to(temporary)
        os.replace(temporary, output)
    except (OSError, duckdb.Error) as exc:
        code = exc.errno if isinstance(exc, OSError) else duckdb_errno(str(exc))
        refused = os_refusal(code, output, first_line(exc))  # named as the file asked for, not its temporary
        raise refused or KicError(f"writing {output} failed: {first_line(exc)}") from exc
    finally:
        with contextlib.suppress(OSError):  # a read-only file system refuses even this
            temporary.unlink(missing_ok=True)


def database_path(con: duckdb.DuckDBPyConnection) -> str:
    return scalar(con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
