"""The one loader of raw.*: it moves what crawls and imports landed (warehouse/landing.py) into raw.*.

Loading runs in one transaction, reads only committed batches, records each file it stored in
raw.landed_files (so the same file is never stored twice), and refuses a file it cannot read,
naming it, while the rest of the crawl is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import duckdb

from warehouse import watchlist
from warehouse.db import scalar, transaction
from warehouse.landing import BATCH_TABLES, COMMIT_TABLE, Landing, parquet, relative
from warehouse.raw import close_run, open_run
from warehouse.util import first_line, utcnow
from warehouse.vocabulary import AccountStatus, RunStatus

log = logging.getLogger("kic.warehouse")

FIND_CRAWL = "SELECT crawl_id, status FROM raw.crawl_runs WHERE landing_key = ?"
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
                report = load_attempt(con, landing, crawl_key, request, refused, close)
            return report
        except UnreadableFile as bad:
            refused[bad.file] = bad.reason
            log.warning("landed file %s refused: %s", bad.file, bad.reason)


class UnreadableFile(Exception):
    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


def load_attempt(
    con, landing: Landing, crawl_key: str, request: dict, refused: dict[str, str], close: bool
) -> LoadReport:
    found = con.execute(FIND_CRAWL, [crawl_key]).fetchall()
    if found and found[0][1] != RunStatus.RUNNING:
        return LoadReport(found[0][0], crawl_key, 0, 0, refused, closed=True)
    if found:
        crawl_id = found[0][0]
    else:
        crawl_id = open_run(
            con,
            request["source"],
            request.get("origin"),
            request["as_of_date"],
            request.get("accounts_requested", sum(request["shards"].values())),
            started_at=request["started_at"],
            landing_key=crawl_key,
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
        # A shard that ended well may still say something (an import's ignored columns).
        message="; ".join(troubles or [end["message"] for end in ends.values() if end and end["message"]]) or None,
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
