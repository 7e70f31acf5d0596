"""The analysts' copy: a read-only snapshot of the warehouse that each successful run refreshes.

DuckDB lets no process open a file that another one is writing, and a reader holding a
file makes a writer fail. So analysts never open the scheduler's warehouse: they open
the copy, which is rebuilt beside it and swapped in with an atomic rename. A session
open on the old copy keeps reading it until it reconnects; the next one sees the new.

The copy is small, so that a publish costs what changed, not the whole history:

- tables that grow with the number of runs (run logs, snapshots, validations, meta.*), and
  the watchlist (one row per account, changed in place), are copied whole into it;
- tables that grow with the number of influencers per run are views over immutable Parquet
  partitions (one file per crawl, feature date, snapshot or validation) in a folder beside
  the copy, `published_dir(copy)`. A partition's file name carries a fingerprint of its
  content, cheap to compute in SQL, so a publish writes only partitions it has not written
  before (new, or rewritten in the warehouse: features of a re-derived date), and removes
  files no longer listed once the new copy is in place;
- raw.posts (about a dozen rows per account per night) is left out: a view of that name
  says so when queried; per-account means are in features.influencer_features;
- then the views are applied on top (their SQL given by the caller: transforms.relations'),
  so analysts see the same names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from warehouse.db import DEFAULT_LOCK_WAIT_SECONDS, STORAGE_COMPATIBILITY, connect, scalar
from warehouse.errors import KicError, NoSpace
from warehouse.util import first_line, literal

# Bumped when partitions are written differently: every file is then written anew.
EXPORT_FORMAT = "parquet-1"
# Suffix of a partition file being written (renamed into place once whole).
PARTIAL = ".tmp"
# The name the copy being built is attached under, while the warehouse is the default database.
COPY_ALIAS = "kic_analysts_copy"

# Raw rows are append-only, and a run's rows are final once it is closed: a closed run's
# partition is fingerprinted by how it closed (read from the run log, no scan of the rows);
# a run still going by its rows so far (a scan of that run's rows only).
BY_RUN = """
SELECT crawl_id, concat_ws('@', status, epoch_us(finished_at)) FROM raw.crawl_runs WHERE status <> 'running'
UNION ALL
SELECT crawl_id, concat_ws('@', 'running', count(*), epoch_us(max(fetched_at))) FROM {table}
WHERE crawl_id IN (SELECT crawl_id FROM raw.crawl_runs WHERE status = 'running')
GROUP BY crawl_id
"""
# Small tables (imports only): fingerprinted by their rows; runs without any get no file.
BY_ROWS = "SELECT crawl_id, concat_ws('@', count(*), epoch_us(max(fetched_at))) FROM {table} GROUP BY crawl_id"
# A date's features are replaced as a whole, all rows stamped with the same computed_at:
# grouping on (date, computed_at) reads two columns that are constant over long runs.
BY_WRITE = """
SELECT feature_date, string_agg(concat_ws('@', n, epoch_us(computed_at)), ',' ORDER BY computed_at)
FROM (SELECT feature_date, computed_at, count(*) AS n FROM features.influencer_features GROUP BY ALL)
GROUP BY feature_date
"""
# A snapshot and its assignments are written in one transaction and never updated.
BY_SNAPSHOT = "SELECT version, epoch_us(created_at) FROM clusters.snapshots"
# A validation's quarantined rows are written once, with it.
BY_VALIDATION = "SELECT validation_id, count(*) FROM quality.quarantined_rows GROUP BY validation_id"
# A plan's accounts are written once, with it.
BY_PLAN = "SELECT crawl_key, epoch_us(planned_at) FROM watchlist.plans"

# Tables published as Parquet partitions: (partition column, SQL listing each partition's
# value and fingerprint). Every other table is copied whole, except those left out.
PARTITIONED = {
    "raw.profiles": ("crawl_id", BY_RUN),
    "raw.account_outcomes": ("crawl_id", BY_RUN),
    "raw.imported_media_means": ("crawl_id", BY_ROWS),
    "raw.rejected_rows": ("crawl_id", BY_ROWS),
    "features.influencer_features": ("feature_date", BY_WRITE),
    "clusters.assignments": ("version", BY_SNAPSHOT),
    "quality.quarantined_rows": ("validation_id", BY_VALIDATION),
    "watchlist.planned_accounts": ("crawl_key", BY_PLAN),
}
LEFT_OUT = {
    "raw.posts": (
        "raw.posts is not in the analysts' copy (about a dozen rows per account per night): "
        "per-account means are in features.influencer_features; posts are in the warehouse only"
    ),
}

PARTITION_FILES = """
SELECT part,
       regexp_replace(CAST(part AS VARCHAR), '[^A-Za-z0-9._-]+', '_', 'g')
       || '-' || left(md5(concat_ws('|', $signature, part, fingerprint)), 16) || '.parquet'
FROM ({fingerprints}) AS listed(part, fingerprint)
ORDER BY part
"""
# The columns of a table, as the warehouse declares them: part of every fingerprint, so that
# a migration changing a table writes its partitions anew.
COLUMNS = """
SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index)
FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? AND table_name = ?
"""
TABLES = """
SELECT schema_name, table_name FROM duckdb_tables()
WHERE database_name = current_database() AND NOT internal AND NOT temporary ORDER BY ALL
"""
SCHEMAS = """
SELECT schema_name FROM duckdb_schemas()
WHERE database_name = current_database() AND NOT internal ORDER BY ALL
"""
# Column comments of tables (units, what a column holds) travel with the copy: analysts read
# them there. The views' own come with the views' SQL applied to the copy.
COLUMN_COMMENTS = """
SELECT c.schema_name, c.table_name, c.column_name, c.comment
FROM duckdb_columns() AS c
JOIN duckdb_tables() AS t USING (database_name, schema_name, table_name)
WHERE c.database_name = current_database() AND NOT c.internal AND c.comment IS NOT NULL ORDER BY ALL
"""
NULL_COLUMNS = """
SELECT string_agg(format('NULL::{} AS "{}"', data_type, column_name), ', ' ORDER BY column_index)
FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? AND table_name = ?
"""


def published_dir(copy: Path) -> Path:
    """The folder of the copy's Parquet partitions (an absolute path): beside the copy, named
    after it. The copy reads files there and nowhere else."""
    copy = Path(os.path.abspath(copy))
    return copy.with_name(copy.stem + ".published")


class PublishFailed(KicError):
    """The analysts' copy could not be published; the warehouse and the previous copy are intact."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient  # the warehouse was held: a later attempt may get it


def publish_copy(
    warehouse: Path, copy: Path, *, views: str, lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS
) -> Path:
    """Publish the warehouse to `copy` (tables, `views`, schema version), atomically: write the
    partitions not written yet, build a new small copy beside the old one, swap it in, then
    remove the partition files it no longer lists. Whatever is missing or damaged (the copy,
    partition files) is written anew. If that fails (a full disk), the temporary files are
    removed and PublishFailed says why: the copy in place stays whole."""
    target = Path(os.path.abspath(copy))
    folder = published_dir(target)
    staging = target.with_name(target.name + ".tmp")
    temporary = [staging, staging.with_name(staging.name + ".wal")]
    try:
        # The warehouse's write lock is held throughout: one publisher at a time, one consistent state.
        with connect(warehouse, lock_wait_seconds=lock_wait_seconds, views=views) as con:
            files = write_partitions(con, folder)
            remove(temporary)  # of a publish cut short
            build_copy(con, staging, files, views)
            os.replace(staging, target)
            remove_unlisted(folder, files)
    except (OSError, duckdb.IOException, KicError) as exc:  # a full disk, the warehouse held too long
        remove(temporary + sorted(folder.rglob(f"*{PARTIAL}")))
        raise PublishFailed(
            f"publishing the analysts' copy {copy} failed ({io_reason(exc)}): it still holds what was last "
            "published, its temporary files are removed; the next writing command (e.g. `kic features`) "
            "publishes it once that is fixed",
            transient=getattr(exc, "transient", False),
        ) from None
    return copy


def io_reason(exc: BaseException) -> str:
    """What went wrong, in one line. DuckDB wraps the operating system's reason: after
    "Original error: " (a failed checkpoint), or as the "exception_message" of a JSON object
    (a failed asynchronous write)."""
    if isinstance(exc, NoSpace):
        return exc.where
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)
    text = str(exc)
    if "Original error: " in text:
        return text.rsplit("Original error: ", 1)[1].splitlines()[0]
    try:
        return json.loads(text[text.index("{") :])["exception_message"]
    except (ValueError, KeyError, TypeError):
        return first_line(exc)


def remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def write_partitions(con: duckdb.DuckDBPyConnection, folder: Path) -> dict[str, list[Path]]:
    """Write every partition whose file is not there yet; return each table's files, in order."""
    files = {}
    for table, (column, fingerprints) in PARTITIONED.items():
        schema, name = table.split(".")
        directory = folder / schema / name
        directory.mkdir(parents=True, exist_ok=True)
        signature = f"{EXPORT_FORMAT}: {table}({scalar(con, COLUMNS, [schema, name])})"
        listed = con.execute(
            PARTITION_FILES.format(fingerprints=fingerprints.format(table=table)), {"signature": signature}
        ).fetchall()
        for part, file_name in listed:
            path = directory / file_name
            if not is_whole_parquet(path):
                written = path.with_name(path.name + PARTIAL)
                con.execute(
                    f"COPY (SELECT * FROM {table} WHERE {column} = $part) TO {literal(written)} (FORMAT parquet)",
                    {"part": part},
                ).fetchall()
                os.replace(written, path)
        files[table] = [directory / file_name for _, file_name in listed]
    return files


def build_copy(con: duckdb.DuckDBPyConnection, path: Path, files: dict[str, list[Path]], views: str) -> None:
    """Write the copy at `path`: small tables whole, views over the partitions, then the views."""
    warehouse = scalar(con, "SELECT current_database()")
    con.execute(f"ATTACH {literal(path)} AS {COPY_ALIAS} (STORAGE_VERSION '{STORAGE_COMPATIBILITY}')").fetchall()
    try:
        for (schema,) in con.execute(SCHEMAS).fetchall():
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {COPY_ALIAS}.{schema}").fetchall()
        for schema, name in con.execute(TABLES).fetchall():
            table = f"{schema}.{name}"
            target = f"{COPY_ALIAS}.{table}"
            if files.get(table):
                listed = ", ".join(literal(file) for file in files[table])
                con.execute(f"CREATE VIEW {target} AS SELECT * FROM read_parquet([{listed}])").fetchall()
            elif table in LEFT_OUT:
                columns = scalar(con, NULL_COLUMNS, [schema, name])
                con.execute(f"CREATE VIEW {target} AS SELECT {columns} WHERE error({literal(LEFT_OUT[table])})")
            elif table in PARTITIONED:  # no partition yet: an empty table of the same shape
                con.execute(f"CREATE TABLE {target} AS FROM {table} LIMIT 0").fetchall()
            else:
                con.execute(f"CREATE TABLE {target} AS FROM {table}").fetchall()
        for schema, name, column, comment in con.execute(COLUMN_COMMENTS).fetchall():
            con.execute(f'COMMENT ON COLUMN {COPY_ALIAS}.{schema}.{name}."{column}" IS {literal(comment)}').fetchall()
        con.execute(f"USE {COPY_ALIAS}")  # the views' names resolve in the copy
        try:
            con.execute(views).fetchall()
        finally:
            con.execute(f'USE "{warehouse}"')
    finally:
        con.execute(f"DETACH {COPY_ALIAS}").fetchall()


def remove_unlisted(folder: Path, files: dict[str, list[Path]]) -> None:
    """Remove the files of the folder the copy does not list: superseded partitions, partitions
    no longer in the warehouse, temporary files of an interrupted publish."""
    listed = {file for table_files in files.values() for file in table_files}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path not in listed:
            path.unlink(missing_ok=True)


def is_whole_parquet(path: Path) -> bool:
    """Whether `path` is there and begins and ends as a Parquet file does (not cut short)."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
            file.seek(-4, os.SEEK_END)
            return head == file.read(4) == b"PAR1"
    except OSError:
        return False
