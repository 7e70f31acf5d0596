"""Opening the DuckDB warehouse, and creating or upgrading its schema by numbered migrations."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd

from warehouse.errors import KicError, WarehouseBusy, duckdb_os_refusal, os_error_line
from warehouse.util import first_line

log = logging.getLogger("kic.warehouse")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_FILE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# How long a writer waits, by default, for another process holding the warehouse.
DEFAULT_LOCK_WAIT_SECONDS = 120.0

# Files are written in the storage format of DuckDB 1.4 (LTS), so that any DuckDB CLI from
# 1.4 on (including the 1.5 one on PyPI) opens the warehouse, not only DuckDB 2.
STORAGE_COMPATIBILITY = "v1.4.0"

# A DuckDB file is three 4 KiB headers, then blocks of `block_size` bytes.
FILE_HEADERS_BYTES = 3 * 4096
DATABASE_SIZE = "SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = current_database()"

SCHEMA_VERSION_DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
-- Grain: one row per applied migration. Key: version.
CREATE TABLE IF NOT EXISTS meta.schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


@cache  # shipped with the code: read once per process, not on every connect
def numbered_sql(directory: Path) -> tuple[tuple[int, str, str], ...]:
    """(number, name, sql) of every NNN_name.sql file in `directory`, in order."""
    found = []
    for entry in directory.iterdir():
        match = MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return tuple(sorted(found))


def migrations() -> tuple[tuple[int, str, str], ...]:
    """(version, name, sql) of every table migration shipped with the code, in order."""
    return numbered_sql(MIGRATIONS_DIR)


def views_fingerprint(views: str) -> str:
    return hashlib.sha256(views.encode()).hexdigest()


def latest_version() -> int:
    return migrations()[-1][0]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The warehouse's recorded schema version, 0 for an empty database."""
    exists = scalar(
        con,
        # duckdb_tables(), not information_schema: half the cost, on every open
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'meta' AND table_name = 'schema_migrations'",
    )
    if not exists:
        return 0
    return scalar(con, "SELECT coalesce(max(version), 0) FROM meta.schema_migrations")


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every pending migration, all in one transaction: the warehouse is at the version it
    had or at the newest, never in between (and a new one is created in one commit)."""
    current = schema_version(con)
    newest = latest_version()
    if current > newest:
        raise KicError(f"warehouse schema version {current} is newer than this kic knows ({newest}); upgrade kic")
    pending = [(version, name, sql) for version, name, sql in migrations() if version > current]
    if pending:
        with transaction(con):
            con.execute(SCHEMA_VERSION_DDL)
            for version, name, sql in pending:
                con.execute(sql)
                con.execute("INSERT INTO meta.schema_migrations (version, name) VALUES (?, ?)", [version, name])
    return [version for version, _, _ in pending]


def apply_views(con: duckdb.DuckDBPyConnection, views: str) -> bool:
    """(Re)create the views and macros when `views` (their SQL) differs from what was applied.

    Views live apart from table migrations (like dbt models): changing one is an edit of
    its file, applied by the next writer, not a new migration. Their SQL is the layer
    above's (transforms.relations.view_sql()): storage applies it, and knows no relation.
    """
    fingerprint = views_fingerprint(views)
    if scalar(con, "SELECT max(fingerprint) FROM meta.applied_views") == fingerprint:
        return False
    with transaction(con):
        con.execute(views)
        con.execute("DELETE FROM meta.applied_views")
        con.execute("INSERT INTO meta.applied_views (fingerprint) VALUES (?)", [fingerprint])
    return True


@contextmanager
def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    views: str | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse; for writing, create it or upgrade its schema and `views` first.

    `views` is the SQL of the views and macros (transforms.relations.view_sql(), which
    pipeline.storage.connect passes), applied when it differs from what was applied last;
    without it, a writer leaves the views as they are. DuckDB lets one process hold a file
    for writing, and then no other may open it at all. If another process holds it, wait
    for it (with backoff, saying so in the log) up to `lock_wait_seconds`.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise KicError(f"no warehouse at {path}: run `kic run` or `kic import-csv` first")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KicError(f"cannot create the warehouse's folder {path.parent}: {exc.strerror}") from None
    opened = path.stat() if path.exists() else None
    con = open_with_retry(path, read_only, lock_wait_seconds)
    try:
        check_whole(con, path, opened)
        if read_only:
            have, need = schema_version(con), latest_version()
            if have != need:
                raise KicError(
                    f"warehouse {path} is at schema version {have}, this kic needs {need}: "
                    "run any writing command (e.g. `kic features`) to upgrade it"
                )
        else:
            migrate(con)
            if views is not None:
                apply_views(con, views)
        yield con
    except duckdb.Error as exc:
        raise storage_error(exc, path) or exc from None
    except OSError as exc:  # a file written beside the warehouse (GX's results, a report, …)
        raise os_error_line(exc) or exc from None
    finally:
        con.close()


class Damaged(KicError):
    """A database file DuckDB cannot read, or whose structure proves it incomplete."""

    def __init__(self, path: Path, detail: str):
        self.path, self.detail = path, detail
        if "not a valid DuckDB database file" in detail:  # its first block: damaged, or never DuckDB's
            super().__init__(
                f"{path} is not a DuckDB database file (its header is damaged, or it is another kind of file): "
                "if it is the warehouse, restore it from a backup"
            )
        else:
            super().__init__(f"{path} is damaged ({detail}): restore it from a backup")


def storage_error(exc: duckdb.Error, path: Path) -> KicError | None:
    """The one line for what DuckDB failed on: the file damaged, or refused by the operating
    system (a full disk, no permission, a read-only file system); None for any other error."""
    if is_damage(exc, path):
        return Damaged(path, first_line(exc))
    return duckdb_os_refusal(str(exc), path)


def check_whole(con: duckdb.DuckDBPyConnection, path: Path, opened: os.stat_result | None) -> None:
    """Refuse a file cut short (an interrupted copy) before anything reads or writes it: DuckDB
    opens it, and fails only on the first missing block it reads.

    DuckDB writes blocks after its headers, so the file holds FILE_HEADERS_BYTES and at least
    as many whole blocks as it uses (trailing free blocks may be cut off).
    """
    now = path.stat()
    if opened is None or (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
        return  # created just now, or replaced since (a publish swapping the copy in): not this file
    block_size, used = con.execute(DATABASE_SIZE).fetchall()[0]
    # A trailing part of a block is not damage: a checkpoint that ran out of space extends the
    # file by less than a block, and the blocks in use (the last checkpoint) are all there.
    blocks = (now.st_size - FILE_HEADERS_BYTES) // block_size
    if blocks < used:
        raise Damaged(
            path,
            f"{now.st_size:,} bytes, where DuckDB's headers and at least {used} whole blocks "
            f"of {block_size:,} bytes were expected: cut short",
        )


def is_damage(exc: duckdb.Error, path: Path) -> bool:
    """Whether DuckDB failed because `path` itself is damaged (what check_whole cannot see: a
    used block cut off while free ones remain, a block overwritten, a header that is not DuckDB's)."""
    text = str(exc)
    return (
        "Corrupt database file" in text
        or "not a valid DuckDB database file" in text
        or ("Could not read enough bytes" in text and os.path.abspath(path) in text)
    )


def is_lock_conflict(exc: Exception) -> bool:
    return "Could not set lock" in str(exc) or "Conflicting lock" in str(exc)


def open_with_retry(path: Path, read_only: bool, lock_wait_seconds: float) -> duckdb.DuckDBPyConnection:
    config = {} if read_only else {"storage_compatibility_version": STORAGE_COMPATIBILITY}
    deadline = time.monotonic() + lock_wait_seconds
    delay = 0.25
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            if not is_lock_conflict(exc):
                raise storage_error(exc, path) or KicError(f"cannot open {path}: {first_line(exc)}") from None
            if time.monotonic() + delay > deadline:
                raise WarehouseBusy(
                    f"cannot open warehouse {path}: {first_line(exc)} (waited {lock_wait_seconds:g} s, "
                    "lock_wait_seconds)"
                ) from None
            log.warning(
                "warehouse %s is held by another process (%s); retrying in %.1f s",
                path,
                holder(exc),
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def holder(exc: Exception) -> str:
    """Who holds the lock, as DuckDB's message tells ("... held in /usr/bin/python (PID 42) ...")."""
    text = first_line(exc)
    return text[text.find("held in") :] if "held in" in text else text


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Writes that belong together: all committed, or none."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, skip_existing: bool = False) -> int:
    """Insert a DataFrame's rows into `table` in one statement, matching columns by name
    (with `skip_existing`, rows whose key is already there are left out)."""
    # DuckDB reads `frame` from this function's locals (a replacement scan): no
    # registration to undo, so nothing is left to clean up in an aborted transaction.
    verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
    con.execute(f"{verb} INTO {table} BY NAME SELECT * FROM frame").fetchall()
    return len(frame)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    """The single value a query returns (fetched completely: DuckDB 2 streams results)."""
    rows = con.execute(sql, params).fetchall()
    return rows[0][0] if rows else None
