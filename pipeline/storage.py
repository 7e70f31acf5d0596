"""Opening the warehouse as the settings say: the one way for steps and commands alike.

warehouse/ is the storage below the relations transforms/ defines, and imports nothing of
them: here the two meet. `connect` and `publish_copy` are warehouse.db's and
warehouse.publish's, given this kic's views (transforms.relations.view_sql()).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipeline.settings import Settings
from transforms.relations import view_sql
from warehouse import db, publish
from warehouse.db import DEFAULT_LOCK_WAIT_SECONDS, Damaged
from warehouse.errors import KicError


@contextmanager
def connect(
    path: Path | str, read_only: bool = False, lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse at `path`: for writing (created, or its schema and views upgraded, first), or read-only."""
    with db.connect(path, read_only=read_only, lock_wait_seconds=lock_wait_seconds, views=view_sql()) as con:
        yield con


def publish_copy(warehouse: Path, copy: Path, lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS) -> Path:
    """Publish `warehouse` to the analysts' copy `copy`, with this kic's views."""
    return publish.publish_copy(warehouse, copy, views=view_sql(), lock_wait_seconds=lock_wait_seconds)


@contextmanager
def open_warehouse(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The scheduler's warehouse: for writing (created or upgraded first), or read-only."""
    with connect(settings.warehouse, read_only, settings.lock_wait_seconds) as con:
        yield con


@contextmanager
def open_readable(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """What reading commands open: the analysts' copy, else (nothing published yet) the warehouse."""
    with (
        reading(settings),
        connect(settings.readable_path, read_only=True, lock_wait_seconds=settings.lock_wait_seconds) as con,
    ):
        yield con


@contextmanager
def reading(settings: Settings) -> Iterator[None]:
    """Reading the readable path (`kic sql` opens it its own way): a damaged copy is made anew by
    publishing, not restored from a backup."""
    try:
        yield
    except Damaged as exc:
        if exc.path != settings.analytics_path:
            raise
        raise KicError(
            f"the analysts' copy {exc.path} is damaged ({exc.detail}): any writing command "
            "(e.g. `kic recluster`) publishes it anew from the warehouse"
        ) from None
