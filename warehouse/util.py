"""Small helpers every layer uses, with no domain of their own."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb

from warehouse.errors import KicError, duckdb_errno, os_refusal


def utcnow() -> datetime:
    return datetime.now(UTC)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def literal(value: Path | str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def in_memory() -> duckdb.DuckDBPyConnection:
    """A connection of its own (threads may each use one at once) to this process's in-memory
    DuckDB, for work on files that is no warehouse's (writing Parquet): opening a DuckDB costs
    about 15 ms, its catalogue of functions built anew; a connection to an open one, nothing."""
    return memory_database(os.getpid()).cursor()


@cache
def memory_database(pid: int) -> duckdb.DuckDBPyConnection:
    """One per process: a forked child makes its own, and never touches (nor frees) its parent's,
    whose DuckDB threads it does not have."""
    return duckdb.connect()


def write_atomically(output: Path, write_to: Callable[[Path], object]) -> None:
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


def replace_folder(new: Path, old: Path) -> None:
    """Put folder `new` where `old` is (if it is), then remove what `old` held."""
    previous = old.with_name(f".{old.name}.{uuid.uuid4().hex[:12]}.old")
    if old.exists():
        os.replace(old, previous)
    os.replace(new, old)
    shutil.rmtree(previous, ignore_errors=True)


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux: changes at each boot


def this_process() -> dict:
    boot_id = BOOT_ID.read_text().strip() if BOOT_ID.exists() else None
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": boot_id, "started_at": utcnow().isoformat()}


def known_dead(process: dict | None) -> bool:
    """Whether a process recorded by `this_process` is known to have ended: on this machine, its
    pid gone, or recorded before the last boot. Elsewhere, or unrecorded: not known."""
    here = this_process()
    if not process or process.get("host") != here["host"] or process.get("boot_id") is None:
        return False
    return process["boot_id"] != here["boot_id"] or not process_alive(process["pid"])


def process_alive(pid: int) -> bool:
    """Running (a zombie no one has reaped yet is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
