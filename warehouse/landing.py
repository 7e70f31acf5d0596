"""The landing area: where crawls and imports put their rows (warehouse/loading.py moves them into raw.*).

A crawl never opens the warehouse. It writes Parquet files under a landing root (a folder
by default, any fsspec URL by setting: s3://…, gs://…, memory://…), one folder per crawl
and one per shard:

    <root>/<crawl_key>/request.json              the crawl as asked: source, origin, as-of date, shards
    <root>/<crawl_key>/requested-<shard>.parquet  the accounts each shard must answer for
    <root>/<crawl_key>/<shard>/<table>-<batch>.parquet   a batch of rows (account_outcomes,
                                                  profiles, posts, discovered; an import's
                                                  imported_media_means, rejected_rows)
    <root>/<crawl_key>/<shard>/closed.json        the shard's end: status, message, Scrapy stats

Every file is written under a temporary name and renamed, and a batch's account_outcomes file
is renamed last: it commits the batch. The loader reads only committed batches, so a batch a
killed crawler left half-written is never loaded.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import fsspec
import pandas as pd

from warehouse.errors import KicError, duckdb_errno
from warehouse.util import in_memory, known_dead, this_process, utcnow

# account_outcomes last: it commits. imported_media_means and rejected_rows: a CSV import's.
BATCH_TABLES = ("posts", "profiles", "imported_media_means", "rejected_rows", "discovered", "account_outcomes")
COMMIT_TABLE = "account_outcomes"
# <table>-<attempt>-<batch>.parquet: a retried shard's new attempt never overwrites an earlier one's files.
BATCH_FILE = re.compile(r"^(?P<table>[a-z_]+)-(?P<batch>[0-9a-f]{8}-\d{6})\.parquet$")
REQUEST_FILE, CLOSED_FILE = "request.json", "closed.json"
# Which process crawls a shard: a shard never closed whose process is gone was abandoned (kill -9).
PROCESS_FILE = "process.json"
TEMPORARY_PREFIX = "."  # temporary names start with a dot: listings skip them


def new_crawl_key(source: str, as_of: date) -> str:
    """A crawl's name in the landing area: readable, and unique without asking the warehouse."""
    return f"{source}-{as_of.isoformat()}-{utcnow():%H%M%S}-{uuid.uuid4().hex[:8]}"


def shard_name(index: int, count: int) -> str:
    return f"shard-{index + 1:03d}-of-{count:03d}"


@dataclass
class Landing:
    """A landing root, local or behind any fsspec URL."""

    url: str
    fs: fsspec.AbstractFileSystem = field(init=False)
    root: str = field(init=False)

    def __post_init__(self):
        self.url = str(self.url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/")
        # fsspec shares one filesystem object per URL in a process, and object stores' (s3fs)
        # cache their listings: other machines land files meanwhile, so each Landing starts
        # from what the store holds now.
        self.fs.invalidate_cache()

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def local_path(self, path: str) -> str | None:
        """The file's path on this machine, when the root is a local folder (DuckDB then reads it directly)."""
        return path if "file" in self.fs.protocol or self.fs.protocol == "local" else None

    # --- writing (the parent of a crawl, and the crawler) -----------------------------

    def put_atomically(self, path: str, write) -> None:
        """Write a file under a temporary name, then rename it: readers never see it half-written."""
        folder, name = path.rsplit("/", 1)
        temporary = f"{folder}/{TEMPORARY_PREFIX}{name}.{uuid.uuid4().hex[:8]}"
        try:
            self.fs.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise KicError(f"cannot create the landing folder {folder}: {exc.strerror or exc}") from None
        local = self.local_path(temporary)
        try:
            if local is not None:
                write(local)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    staged = str(Path(tmp) / name)
                    write(staged)
                    self.fs.put_file(staged, temporary)
            self.fs.mv(temporary, path)
        except BaseException as exc:
            if self.fs.exists(temporary):  # cut short (a full disk): never left behind
                self.fs.rm(temporary)
            if isinstance(exc, OSError) and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror, path) from exc  # named as the file it was to be
            raise

    def put_json(self, path: str, content: Mapping) -> None:
        self.put_atomically(path, lambda local: Path(local).write_text(json.dumps(content, default=str)))

    def put_frame(self, path: str, frame: pd.DataFrame) -> None:
        def write(local: str) -> None:
            with in_memory() as con:  # not the warehouse: DuckDB writes the Parquet
                con.register("batch", frame)
                try:
                    con.execute(f"COPY batch TO '{local}' (FORMAT parquet)").fetchall()
                except duckdb.IOException as exc:  # the operating system's refusal, as an OSError
                    code = duckdb_errno(str(exc))
                    if code is None:
                        raise
                    raise OSError(code, os.strerror(code), local) from exc

        self.put_atomically(path, write)

    def open_crawl(
        self,
        crawl_key: str,
        source: str,
        origin: str | None,
        as_of: date,
        shards: Mapping[str, Iterable[str]],
        pacing: Mapping | None = None,
        accounts_requested: int | None = None,
    ) -> None:
        """Record a crawl as asked, before any crawler starts: its accounts, shard by shard, and
        (`pacing`) each shard's quota and the crawl window's end, for whichever machine crawls it.
        `accounts_requested` counts what was asked when it is more than the shards' accounts (an
        import's rejected rows)."""
        counts = {}
        for shard, usernames in shards.items():
            frame = pd.DataFrame({"username": list(usernames)}, dtype=str)
            counts[shard] = len(frame)
            self.put_frame(self.path(crawl_key, f"requested-{shard}.parquet"), frame)
        request = {
            "source": source,
            "origin": origin,
            "as_of_date": as_of,
            "started_at": utcnow(),
            "shards": counts,
            # Who opened it (`kic crawl`, a nightly run): a shard whose crawler never started is
            # abandoned once its opener is known dead.
            "opener": this_process(),
        }
        if pacing is not None:
            request["pacing"] = dict(pacing)
        if accounts_requested is not None:
            request["accounts_requested"] = accounts_requested
        self.put_json(self.path(crawl_key, REQUEST_FILE), request)

    def put_batch(self, crawl_key: str, shard: str, batch: str, frames: Mapping[str, pd.DataFrame]) -> None:
        """Land one batch (`batch`: "<attempt>-<number>"); its account_outcomes file, renamed last, commits it."""
        for table in BATCH_TABLES:
            frame = frames.get(table)
            if frame is not None and (len(frame) or table == COMMIT_TABLE):
                self.put_frame(self.path(crawl_key, shard, f"{table}-{batch}.parquet"), frame)

    def close_shard(self, crawl_key: str, shard: str, status: str, message: str | None, stats: Mapping) -> None:
        closed = {"status": status, "message": message, "finished_at": utcnow(), "stats": stats}
        self.put_json(self.path(crawl_key, shard, CLOSED_FILE), closed)

    def mark_running(self, crawl_key: str, shard: str) -> None:
        """Record the process crawling a shard (the latest attempt's), so a loader can tell it died."""
        self.put_json(self.path(crawl_key, shard, PROCESS_FILE), this_process())

    # --- reading (the loader) ----------------------------------------------------------

    def abandoned(self, crawl_key: str, shard: str) -> bool:
        """Never closed, and the process that answers for it is known dead: its crawler, or (the
        crawler never started) the process that opened the crawl; on this machine, gone or from
        an earlier boot. A process on another machine, or of unknown state, counts as running.
        """
        if self.closed(crawl_key, shard) is not None:
            return False
        path = self.path(crawl_key, shard, PROCESS_FILE)
        if self.fs.exists(path):
            return known_dead(json.loads(self.fs.cat_file(path)))
        return known_dead(self.request(crawl_key).get("opener"))

    def crawl_keys(self) -> list[str]:
        """Every crawl in the landing area that has a request, oldest first by name."""
        if not self.fs.exists(self.root):
            return []
        keys = [p.rsplit("/", 1)[1] for p in self.fs.ls(self.root, detail=False) if self.fs.isdir(p)]
        return sorted(
            k for k in keys if not k.startswith(TEMPORARY_PREFIX) and self.fs.exists(self.path(k, REQUEST_FILE))
        )

    def request(self, crawl_key: str) -> dict:
        path = self.path(crawl_key, REQUEST_FILE)
        if not self.fs.exists(path):
            raise KicError(f"no crawl {crawl_key!r} in the landing area {self.url} (no {REQUEST_FILE})")
        return json.loads(self.fs.cat_file(path))

    def closed(self, crawl_key: str, shard: str) -> dict | None:
        path = self.path(crawl_key, shard, CLOSED_FILE)
        return json.loads(self.fs.cat_file(path)) if self.fs.exists(path) else None

    def committed_batches(self, crawl_key: str, shard: str) -> dict[str, dict[str, str]]:
        """{batch: {table: path}} of the batches whose commit file has landed."""
        folder = self.path(crawl_key, shard)
        if not self.fs.exists(folder):
            return {}
        batches: dict[str, dict[str, str]] = {}
        for path in self.fs.ls(folder, detail=False):
            match = BATCH_FILE.match(path.rsplit("/", 1)[1])
            if match:
                batches.setdefault(match["batch"], {})[match["table"]] = path
        return {n: files for n, files in sorted(batches.items()) if COMMIT_TABLE in files}

    def requested(self, crawl_key: str, shard: str) -> list[str]:
        """The accounts a shard must answer for, in order."""
        return self.usernames([self.path(crawl_key, f"requested-{shard}.parquet")])

    def unanswered(self, crawl_key: str, shard: str) -> list[str]:
        """The shard's accounts that no committed batch answers yet (all of them on a first attempt)."""
        answered = set(
            self.usernames([files[COMMIT_TABLE] for files in self.committed_batches(crawl_key, shard).values()])
        )
        return [u for u in self.requested(crawl_key, shard) if u not in answered]

    def usernames(self, paths: list[str]) -> list[str]:
        if not paths:
            return []
        with duckdb.connect() as con:  # in memory: reads the landed files, never the warehouse
            sources = " UNION ALL ".join(f"SELECT username FROM {parquet(con, self, path)}" for path in paths)
            return [u for (u,) in con.execute(sources).fetchall()]

    def remove_crawl(self, crawl_key: str) -> None:
        self.fs.rm(self.path(crawl_key), recursive=True)


def relative(landing: Landing, path: str) -> str:
    return path.removeprefix(landing.root + "/")


def parquet(con: duckdb.DuckDBPyConnection, landing: Landing, path: str) -> str:
    """SQL reading one landed Parquet file: directly when local, through fsspec otherwise (s3://, memory://…)."""
    if landing.local_path(path) is not None:
        return f"read_parquet('{path}')"
    protocol = landing.fs.protocol if isinstance(landing.fs.protocol, str) else landing.fs.protocol[0]
    if not con.filesystem_is_registered(protocol):
        con.register_filesystem(landing.fs)
        # DuckDB reads it through fsspec (landing.fs): never through an extension of its own
        # (httpfs), which it would download from the network the first time.
        con.execute("SET autoinstall_known_extensions = false").fetchall()
    return f"read_parquet('{protocol}://{path}')"
