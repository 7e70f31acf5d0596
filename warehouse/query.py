"""An analyst's SQL on the analysts' copy: one read-only statement, bounded in time and rows,
with no file access beyond the copy and its Parquet folder.

Two guards, both DuckDB's own: its parser decides what kind of statement the text is (only
one SELECT-like statement is run; `COPY … TO` only into a folder the caller names), and the
connection is opened with external access disabled, the copy's folder (and that named folder)
as the only directories it may touch, no spilling to disk, a maximum execution time, and the
configuration locked, so that no statement can loosen any of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from warehouse.db import DEFAULT_LOCK_WAIT_SECONDS, connect
from warehouse.errors import KicError
from warehouse.publish import published_dir
from warehouse.util import first_line

# What kic sql calls each kind of statement it refuses, and why (any other kind: the copy is read-only).
REFUSED = {
    duckdb.StatementType.COPY: (
        "COPY",
        "it writes no files (export with --format csv > FILE, or COPY … TO into a folder named by --allow-files DIR)",
    ),
    duckdb.StatementType.EXPORT: ("EXPORT DATABASE", "it writes no files"),
    duckdb.StatementType.ATTACH: (
        "ATTACH",
        "it reads the analysts' copy only (attaching the scheduler's warehouse would make runs wait)",
    ),
    duckdb.StatementType.DETACH: ("DETACH", "it reads the analysts' copy only"),
    duckdb.StatementType.LOAD: ("INSTALL and LOAD", "it loads no extensions"),
    duckdb.StatementType.SET: (
        "SET, RESET, USE and PRAGMA name = value",
        "its session is fixed; its limits are kic settings (sql_timeout_seconds, sql_max_rows)",
    ),
    duckdb.StatementType.PRAGMA: ("PRAGMA", "its session is fixed (for the tables: SHOW ALL TABLES, DESCRIBE name)"),
    duckdb.StatementType.CALL: ("CALL", "it runs one SELECT-like statement"),
    duckdb.StatementType.EXPLAIN: ("EXPLAIN", "EXPLAIN ANALYZE would run its statement"),
    # DuckDB runs a PIVOT without IN as two statements, the first creating a type.
    duckdb.StatementType.MULTI: (
        "PIVOT without IN",
        "name the values it pivots on: PIVOT t ON col IN ('a', 'b') USING …",
    ),
}
SELECT_LIKE = "SELECT, FROM, WITH, VALUES, TABLE, DESCRIBE, SHOW, SUMMARIZE, PIVOT … IN"

# Limits of `kic sql` (the settings' defaults; pipeline.settings holds the values in force).
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_ROWS = 100_000


def one_statement(sql: str, *, allow_copy: bool = False) -> duckdb.Statement:
    """The single SELECT-like statement `sql` holds (or `COPY` with `allow_copy`), as DuckDB's
    parser reads it; anything else is a KicError saying why."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise KicError(f"query failed: {first_line(exc)}") from None
    if not statements:
        raise KicError("no SQL statement given")
    if len(statements) > 1:
        raise KicError(f"kic sql runs one statement at a time; this text holds {len(statements)}")
    (statement,) = statements
    try:
        kind = statement.type
    except ValueError:  # a kind the Python client has no name for (e.g. UPDATE EXTENSIONS)
        kind = None
    if kind == duckdb.StatementType.SELECT or (allow_copy and kind == duckdb.StatementType.COPY):
        return statement
    name = f"{kind.name} statements" if kind else "this kind of statement"
    name, why = REFUSED.get(kind, (name, "the analysts' copy is read-only"))
    raise KicError(f"kic sql refuses {name}: {why}; it runs one SELECT-like statement ({SELECT_LIKE})")


def files_folder(folder: Path) -> Path:
    """The folder named by --allow-files, absolute, if it exists (the caller has checked it
    lies apart from the product's files)."""
    if not folder.is_dir():
        raise KicError(f"--allow-files {folder}: no such folder")
    return Path(os.path.abspath(folder))


@contextmanager
def guarded(
    path: Path, *, timeout_seconds: float, folders: list[Path], lock_wait_seconds: float
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to `path` that may touch no file but `path` and those under
    `folders` (the copy's Parquet folder always), stops any query after `timeout_seconds`,
    and whose settings no statement can change."""
    # Each folder as DuckDB may see it: as named (relative paths resolve against the working
    # directory) and with its symbolic links resolved.
    allowed = dict.fromkeys(
        variant + os.sep
        for folder in [published_dir(path), *folders]
        for variant in (os.path.abspath(folder), os.path.realpath(folder))
    )
    with connect(path, read_only=True, lock_wait_seconds=lock_wait_seconds) as con:
        # The order matters: allowed_directories can't be set once external access is off,
        # and nothing can be set once the configuration is locked.
        con.execute("SET temp_directory = ''")  # nothing spilled to disk beside the copy
        con.execute("SET allowed_directories = $folders", {"folders": list(allowed)})
        con.execute("SET enable_external_access = false")
        con.execute("SET max_execution_time = $ms", {"ms": max(1, round(timeout_seconds * 1000))})
        con.execute("SET lock_configuration = true")
        yield con


def run_query(
    path: Path,
    sql: str,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    max_rows: int = DEFAULT_MAX_ROWS,
    files: Path | None = None,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
) -> pd.DataFrame:
    """Run one SELECT-like statement on `path` read-only and return its rows (at most
    `max_rows`, else a KicError). With `files`, a folder apart from the product's files,
    the statement may also read files there or `COPY … TO` one."""
    statement = one_statement(sql, allow_copy=files is not None)
    folders = [files_folder(files)] if files is not None else []
    with guarded(path, timeout_seconds=timeout_seconds, folders=folders, lock_wait_seconds=lock_wait_seconds) as con:
        try:
            if statement.type == duckdb.StatementType.COPY:
                return con.execute(statement.query).df()  # how many rows were written
            # One row past the limit tells that there were more, without fetching them all.
            frame = con.sql(statement.query).limit(max_rows + 1).df()
        except duckdb.InterruptException as exc:
            if "maximum execution time" not in str(exc):
                raise
            raise KicError(
                f"the query ran for {timeout_seconds:g} s, the limit (sql_timeout_seconds, "
                "KIC_SQL_TIMEOUT_SECONDS), and was stopped: narrow it (WHERE, LIMIT, GROUP BY)"
            ) from None
        except duckdb.PermissionException as exc:
            # "Permission Error: Cannot access file "x" - file system operations are disabled …"
            what = first_line(exc).removeprefix("Permission Error: ").split(" - ")[0]
            reach = ", ".join(str(place) for place in [path, published_dir(path), *folders])
            raise KicError(
                f"kic sql refuses to touch files beyond the analysts' copy ({what}): it reads only {reach} "
                "(files of your own, at your own terminal: --allow-files DIR)"
            ) from None
        except duckdb.Error as exc:
            raise KicError(f"query failed: {first_line(exc)}") from None
    if len(frame) > max_rows:
        raise KicError(
            f"the query returns more than {max_rows:,} rows, the limit (sql_max_rows, KIC_SQL_MAX_ROWS): "
            "narrow it (WHERE, LIMIT, GROUP BY), or write it to a file with COPY … TO and --allow-files DIR"
        )
    return frame
