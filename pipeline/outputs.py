"""Files a user names for the product to write (`export -o`, `report -o`, `sql --allow-files`):
never the product's own.

A path is resolved as the operating system would follow it (relative to the working
directory, `..`, symbolic links) and refused, before anything is written, when it is the
warehouse or the analysts' copy, one of DuckDB's files beside them (WAL, temporary files,
the copy being built), or lies inside a folder the product owns: the copy's Parquet
partitions, the landing area, Great Expectations' Data Docs and results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import Settings
from warehouse.errors import KicError
from warehouse.publish import published_dir


@dataclass(frozen=True)
class ProductPaths:
    """What the product owns on this machine: database files (each with DuckDB's companions
    named after it) and folders."""

    databases: tuple[Path, ...]
    folders: tuple[Path, ...]

    @classmethod
    def of(cls, settings: Settings) -> ProductPaths:
        landing = settings.landing_root
        local_landing = () if "://" in landing else (Path(landing),)
        return cls(
            databases=(settings.warehouse, settings.analytics_path),
            folders=(
                published_dir(settings.analytics_path),
                *local_landing,
                settings.data_docs_path,
                settings.validation_results_path,
            ),
        )

    def owner_of(self, path: Path) -> str | None:
        """What of the product's `path` is or lies in, once resolved; None if it is the user's."""
        real = resolved(path)
        for database in self.databases:
            home = resolved(database)
            # DuckDB's companions: <db>.wal, <db>.tmp (its spill folder, or the copy being built), ….
            if real == home or (real.parent == home.parent and real.name.startswith(home.name + ".")):
                return f"the product's database {database}"
        for folder in self.folders:
            if real.is_relative_to(resolved(folder)):
                return f"the product's folder {folder}"
        return None

    def overlapping(self, folder: Path) -> str | None:
        """What of the product's lies in `folder` or holds it, once resolved; None if apart."""
        real = resolved(folder)
        for database in self.databases:
            home = resolved(database).parent
            if home.is_relative_to(real) or real.is_relative_to(home):
                return f"{home}, which holds {database.name}"
        for owned in self.folders:
            home = resolved(owned)
            if home.is_relative_to(real) or real.is_relative_to(home):
                return f"the product's folder {owned}"
        return None


def resolved(path: Path) -> Path:
    """`path` as the operating system follows it: absolute, `..` and symbolic links resolved
    (a missing final part kept as named)."""
    return Path(os.path.realpath(path))


def check_output(settings: Settings, output: Path, option: str = "-o") -> Path:
    """Refuse, in one line, to write `output` where the product keeps its own files."""
    owner = ProductPaths.of(settings).owner_of(output)
    if owner is not None:
        raise KicError(f"{option} {output}: refused, it is {owner}; name a file of your own elsewhere")
    return output


def check_files_folder(settings: Settings, folder: Path) -> Path:
    """Refuse `sql --allow-files DIR` when DIR holds, or lies in, what the product owns; or holds
    a symbolic link into it (a COPY … TO through the link would write there)."""
    paths = ProductPaths.of(settings)
    overlap = paths.overlapping(folder)
    if overlap is None and folder.is_dir():
        links = (Path(root, name) for root, dirs, files in os.walk(folder) for name in dirs + files)
        overlap = next(
            (f"{link} -> {owner}" for link in links if link.is_symlink() and (owner := paths.owner_of(link))), None
        )
    if overlap is not None:
        raise KicError(f"--allow-files {folder}: refused, it overlaps {overlap}; name a folder of your own")
    return folder
