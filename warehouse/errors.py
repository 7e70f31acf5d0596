"""The errors every layer raises for what a user can act on (defined at the bottom layer), and
the one line said of what the operating system or DuckDB refused."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path


class KicError(Exception):
    """An error the user can act on: shown as one line, without a traceback.

    `transient` says whether the same step, run again a little later, may succeed; flows
    retry only those (a bad input, a full disk or a damaged file fails the same way again).
    """

    transient = False


class WarehouseBusy(KicError):
    """Another process held the warehouse for longer than the lock wait: it may let go."""

    transient = True


class NoSpace(KicError):
    """A disk is full. Whatever was being written is not stored; what was stored is whole."""

    def __init__(self, where: str):
        self.where = where  # "no space left on the disk of PATH (… MiB free of … MiB)"
        super().__init__(
            f"{where}: free space and run again; nothing stored was lost (what was being written was not stored)"
        )


# DuckDB names the file it failed on in quotes: 'Could not write file "/a/b.duckdb": No space …'.
QUOTED_FILE = re.compile(r'file "([^"]+)"')


def no_space(path: Path | str) -> NoSpace:
    """The line for a full disk: which file, how full its disk is, what to do."""
    folder = Path(path)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
        disk = f" ({usage.free / 2**20:,.1f} MiB free of {usage.total / 2**20:,.0f} MiB)"
    except OSError:
        disk = ""
    return NoSpace(f"no space left on the disk of {path}{disk}")


def os_refusal(code: int | None, path: Path | str | None, reason: str) -> KicError | None:
    """One line for a file the operating system refused, by its errno; None for other errors."""
    where = path if path is not None else "a file"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return no_space(path if path is not None else os.getcwd())
    if code == errno.EROFS:
        return KicError(f"cannot write {where}: its file system is read-only (mounted read-only?)")
    if code in (errno.EACCES, errno.EPERM):
        return KicError(f"cannot open {where}: permission denied (check who owns it, its mode and attributes)")
    if code == errno.EIO:
        return KicError(f"cannot read or write {where}: the disk reported an I/O error ({reason})")
    return None


def os_error_line(exc: OSError) -> KicError | None:
    """`os_refusal` for an OSError, naming the file it carries."""
    return os_refusal(exc.errno, exc.filename, exc.strerror or str(exc))


# The operating system's words in DuckDB's messages, and their errno.
DUCKDB_OS_REASONS = {
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
    "Operation not permitted": errno.EPERM,
    "Input/output error": errno.EIO,
}


def duckdb_errno(text: str) -> int | None:
    """The errno whose words a DuckDB error's text carries, if any."""
    return next((code for reason, code in DUCKDB_OS_REASONS.items() if reason in text), None)


def duckdb_os_refusal(text: str, path: Path | str) -> KicError | None:
    """`os_refusal` for a DuckDB error whose text carries the operating system's reason; the file
    is the one DuckDB names, else `path`."""
    code = duckdb_errno(text)
    if code is None:
        return None
    named = QUOTED_FILE.search(text)
    return os_refusal(code, named.group(1) if named else path, os.strerror(code))
