"""Opening the warehouse as the settings say: the one way for steps and commands alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from pipeline.settings import Settings
from warehouse.db import Damaged, connect
from warehouse.errors import KicError


@contextmanager
def open_warehouse(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """The scheduler's warehouse: for writing (created or upgraded first), or read-only."""
    with connect(settings.warehouse, read_only=read_only, lock_wait_seconds=settings.lock_wait_seconds) as con:
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
