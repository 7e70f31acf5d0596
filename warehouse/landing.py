"""The landing area: where crawls put what they fetched, and the one loader that moves it into raw.*.

A crawl never opens the warehouse. It writes Parquet files under a landing root (a folder
by default, any fsspec URL by setting: s3://…, gs://…, memory://…), one folder per crawl
and one per shard:

    <root>/<crawl_key>/request.json              the crawl as asked: source, origin, as-of date, shards
    <root>/<crawl_key>/requested-<shard>.parquet  the accounts each shard must answer for
    <root>/<crawl_key>/<shard>/<table>-<batch>.parquet   a batch of rows (account_outcomes,
                                                  profiles, posts, discovered)
    <root>/<crawl_key>/<shard>/closed.json        the shard's end: status, message, Scrapy stats

Every file is written under a temporary name and renamed, and a batch's account_outcomes file
is renamed last: it commits the batch. The loader reads only committed batches, so a batch a
killed crawler left half-written is never loaded. Loading runs in one transaction, records
each file it stored in raw.landed_files (so the same file is never stored twice), and refuses
a file it cannot read, naming it, while the rest of the crawl is kept.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import fsspec
import pandas as pd

from warehouse import watchlist
from warehouse.db import scalar, transaction
from warehouse.errors import KicError, duckdb_errno
from warehouse.raw import close_run
from warehouse.util import first_line, utcnow
from warehouse.vocabulary import AccountStatus, RunStatus

log = logging.getLogger("kic.warehouse")

BATCH_TABLES = ("posts", "profiles", "discovered", "account_outcomes")  # account_outcomes last: it commits
COMMIT_TABLE = "account_outcomes"
# <table>-<attempt>-<batch>.parquet: a retried shard's new attempt never overwrites an earlier one's files.
BATCH_FILE = re.compile(r"^(?P<table>[a-z_]+)-(?P<batch>[0-9a-f]{8}-\d{6})\.parquet$")
REQUEST_FILE, CLOSED_FILE = "request.json", "closed.json"
# Which process crawls a shard: a shard never closed whose process is gone was abandoned (kill -9).
PROCESS_FILE = "process.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux: changes at each boot
TEMPORARY_PREFIX = "."  # temporary names start with a dot: listings skip them

FIND_CRAWL = "SELECT crawl_id, status FROM raw.crawl_runs WHERE landing_key = ?"
OPEN_CRAWL = """
INSERT INTO raw.crawl_runs (source, origin, as_of_date, started_at, status, accounts_requested, landing_key)
VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING crawl_id
"""
LOADED_FILES = "SELECT file FROM raw.landed_files WHERE crawl_id = ?"
RECORD_FILE = "INSERT INTO raw.landed_files (crawl_id, file, table_name, row_count, loaded_at) VALUES (?, ?, ?, ?, ?)"
# Accounts asked for that no loaded batch answered: recorded, never dropped silently.
UNANSWERED = """
INSERT INTO raw.account_outcomes (crawl_id, username, status, reason, fetched_at)
SELECT $crawl_id, requested.username, $status, $reason, $now
FROM {requested} AS requested ANTI JOIN raw.account_outcomes AS done
    ON done.crawl_id = $crawl_id AND done.username = requested.username
"""
CLOSED_CRAWLS_BEFORE = """
SELECT landing_key FROM raw.crawl_runs
WHERE landing_key IS NOT NULL AND status <> 'running' AND finished_at < ?
"""


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
            with duckdb.connect() as con:  # an in-memory DuckDB, not the warehouse: it writes Parquet
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
    ) -> None:
        """Record a crawl as asked, before any crawler starts: its accounts, shard by shard, and
        (`pacing`) each shard's quota and the crawl window's end, for whichever machine crawls it."""
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


@dataclass(frozen=True)
class LoadReport:
    crawl_id: int
    crawl_key: str
    files_loaded: int
    rows_loaded: int
    refused: dict[str, str]  # file → why
    closed: bool


def load_crawl(con: duckdb.DuckDBPyConnection, landing: Landing, crawl_key: str, *, close: bool = True) -> LoadReport:
    """Move a crawl's committed batches into raw.*, in one transaction; with `close`, close its run.

    Files already loaded are skipped; a file that cannot be read is refused (named in the
    report and the run's message) and its batch left out, the rest loaded. Closing records
    every requested account no loaded batch answered as "not crawled", and sets the run's
    status from the shards' own ends.
    """
    request = landing.request(crawl_key)
    refused: dict[str, str] = {}
    while True:
        try:
            with transaction(con):
                report = load_once(con, landing, crawl_key, request, refused, close)
            return report
        except UnreadableFile as bad:
            refused[bad.file] = bad.reason
            log.warning("landed file %s refused: %s", bad.file, bad.reason)


class UnreadableFile(Exception):
    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


def load_once(con, landing: Landing, crawl_key: str, request: dict, refused: dict[str, str], close: bool) -> LoadReport:
    found = con.execute(FIND_CRAWL, [crawl_key]).fetchall()
    if found and found[0][1] != RunStatus.RUNNING:
        return LoadReport(found[0][0], crawl_key, 0, 0, refused, closed=True)
    if found:
        crawl_id = found[0][0]
    else:
        crawl_id = scalar(
            con,
            OPEN_CRAWL,
            [
                request["source"],
                request.get("origin"),
                request["as_of_date"],
                request["started_at"],
                RunStatus.RUNNING,
                sum(request["shards"].values()),
                crawl_key,
            ],
        )
    loaded = {file for (file,) in con.execute(LOADED_FILES, [crawl_id]).fetchall()}
    files = rows = 0
    now = utcnow()
    for shard in request["shards"]:
        for files_of_batch in landing.committed_batches(crawl_key, shard).values():
            names = {table: relative(landing, path) for table, path in files_of_batch.items()}
            if any(name in refused for name in names.values()) or names[COMMIT_TABLE] in loaded:
                continue
            for table in BATCH_TABLES:
                if table in files_of_batch:
                    count = load_file(con, landing, files_of_batch[table], names[table], table, crawl_id)
                    con.execute(RECORD_FILE, [crawl_id, names[table], table, count, now]).fetchall()
                    files, rows = files + 1, rows + count
    closed = False
    if close:
        close_crawl(con, landing, crawl_key, request, crawl_id, refused)
        closed = True
    return LoadReport(crawl_id, crawl_key, files, rows, dict(refused), closed)


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


def load_file(con, landing: Landing, path: str, name: str, table: str, crawl_id: int) -> int:
    source = parquet(con, landing, path)
    try:
        if table == "discovered":
            found = con.execute(f"SELECT tag, list(DISTINCT username) FROM {source} GROUP BY tag").fetchall()
            for tag, usernames in found:  # accounts found under a hashtag join the watchlist
                watchlist.add(con, usernames, f"tag:{tag}")
            return sum(len(usernames) for _, usernames in found)
        return scalar(
            con,
            f"WITH stored AS (INSERT INTO raw.{table} BY NAME "
            f"SELECT *, {int(crawl_id)} AS crawl_id FROM {source} RETURNING 1) SELECT count(*) FROM stored",
        )
    except duckdb.Error as exc:
        raise UnreadableFile(name, first_line(exc)) from exc


def close_crawl(con, landing: Landing, crawl_key: str, request: dict, crawl_id: int, refused: dict[str, str]) -> None:
    """Record unanswered accounts; close the run, succeeded only if every shard ended well and nothing was refused."""
    ends = {shard: landing.closed(crawl_key, shard) for shard in request["shards"]}
    troubles = [f"{shard}: never finished" for shard, end in ends.items() if end is None]
    troubles += [
        f"{shard}: {end['message'] or end['status']}"
        for shard, end in ends.items()
        if end is not None and end["status"] != RunStatus.SUCCEEDED
    ]
    troubles += [f"file {name} refused ({why})" for name, why in refused.items()]
    for shard in request["shards"]:
        # Accounts of a refused batch whose commit file still reads: not loaded, and why.
        for files_of_batch in landing.committed_batches(crawl_key, shard).values():
            names = {relative(landing, path): path for path in files_of_batch.values()}
            bad = [name for name in names if name in refused]
            commit = files_of_batch[COMMIT_TABLE]
            if bad and relative(landing, commit) not in refused:
                why = f"not loaded: its landed file {bad[0]} was refused ({refused[bad[0]]})"
                record_unanswered(con, parquet(con, landing, commit), crawl_id, why)
        end = ends[shard]
        why = "the crawler stopped before reaching it" if end is None else (end["message"] or "stopped")
        if end is not None and end["status"] == RunStatus.SUCCEEDED:
            why = "no landed batch answered for it"  # the crawler reached every account: a file was lost
        unreadable = [name for name in refused if name.startswith(f"{crawl_key}/{shard}/")]
        if unreadable:
            why += f", or it was in a landed file that was refused ({', '.join(unreadable)})"
        requested = parquet(con, landing, landing.path(crawl_key, f"requested-{shard}.parquet"))
        record_unanswered(con, requested, crawl_id, f"not crawled: {why}")
    stats = {shard: (end or {}).get("stats") for shard, end in ends.items()}
    close_run(
        con,
        crawl_id,
        RunStatus.INTERRUPTED if troubles else RunStatus.SUCCEEDED,
        stats=stats,
        message="; ".join(troubles) or None,
    )


def record_unanswered(con, accounts_sql: str, crawl_id: int, reason: str) -> None:
    """An error outcome, with `reason`, for each account read by `accounts_sql` that has none yet."""
    con.execute(
        UNANSWERED.format(requested=accounts_sql),
        {"crawl_id": crawl_id, "status": AccountStatus.ERROR, "reason": reason, "now": utcnow()},
    ).fetchall()


def closed_crawl_keys(con: duckdb.DuckDBPyConnection, keys: list[str]) -> list[str]:
    """Which of these crawls the warehouse has loaded and closed."""
    sql = "SELECT landing_key FROM raw.crawl_runs WHERE status <> 'running' AND list_contains(?, landing_key)"
    return [key for (key,) in con.execute(sql, [keys]).fetchall()]


def remove_loaded(con: duckdb.DuckDBPyConnection, landing: Landing, retention_days: float) -> list[str]:
    """Delete the landed files of crawls loaded and closed more than `retention_days` ago."""
    before = utcnow() - timedelta(days=retention_days)
    closed = {key for (key,) in con.execute(CLOSED_CRAWLS_BEFORE, [before]).fetchall()}
    removed = [key for key in landing.crawl_keys() if key in closed]
    for key in removed:
        landing.remove_crawl(key)
    return removed


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
