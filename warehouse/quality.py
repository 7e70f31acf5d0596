"""Reading what validation checks, in bounded chunks, and storing what it found (the `quality` schema)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from warehouse.db import insert_frame, transaction
from warehouse.vocabulary import READABLE_RUNS

# Rows per chunk a validation reads and checks at a time: memory follows the chunk, not the night.
CHUNK_ROWS = 250_000
VECTOR_ROWS = 2048  # DuckDB hands results over in vectors of this many rows

# The raw tables of one crawl or import. Their rows stream in storage order (DuckDB keeps
# insertion order), not sorted: a sort would go through the whole crawl first.
CRAWL_TABLES = ("raw.profiles", "raw.posts", "raw.imported_media_means")
CRAWL_ROWS = "SELECT * FROM {table} WHERE crawl_id = $crawl_id"
# A raw table's key need not be a PRIMARY KEY (none is checked on insert: see the
# migrations), so a key may repeat anywhere in a crawl. The keys that do (normally none)
# are found in SQL, and their rows streamed first, sorted by key, each key's rows in one
# chunk; then the other rows. A uniqueness check on each chunk then finds every repeat.
REPEATED_KEYS = "SELECT {key} FROM {table} WHERE crawl_id = $crawl_id GROUP BY ALL HAVING count(*) > 1"
REPEATED_ROWS = """
SELECT t.* FROM {table} AS t SEMI JOIN ({repeated}) AS r USING ({key})
WHERE t.crawl_id = $crawl_id ORDER BY {key}
"""
UNIQUE_ROWS = """
SELECT t.* FROM {table} AS t ANTI JOIN ({repeated}) AS r USING ({key})
WHERE t.crawl_id = $crawl_id
"""
CRAWL_COUNTS = """
SELECT
    (SELECT count(*) FROM raw.profiles WHERE crawl_id = $crawl_id)               AS profiles,
    (SELECT count(*) FROM raw.posts WHERE crawl_id = $crawl_id)                  AS posts,
    (SELECT count(*) FROM raw.imported_media_means WHERE crawl_id = $crawl_id)   AS imported_media_means
"""
PREVIOUS_CRAWL_COUNTS = """
SELECT
    (SELECT count(*) FROM raw.profiles p WHERE p.crawl_id = r.crawl_id) AS profiles,
    (SELECT count(*) FROM raw.posts p WHERE p.crawl_id = r.crawl_id)    AS posts
FROM raw.crawl_runs r
WHERE r.crawl_id < ? AND r.source = ? AND list_contains(?, r.status)
ORDER BY r.crawl_id DESC
LIMIT 1
"""
# The accounts a crawl answered for, deferred ones left out: what its plan had it reach.
CRAWL_REACHED = """
SELECT count(*) FILTER (WHERE status <> 'deferred') FROM raw.account_outcomes WHERE crawl_id = ?
"""
PREVIOUS_FEATURE_COUNT = """
SELECT count(*) FROM features.influencer_features
WHERE feature_date = (SELECT max(feature_date) FROM features.influencer_features WHERE feature_date < ?)
"""


def chunks(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params=None,
    chunk_rows: int = CHUNK_ROWS,
    *,
    whole: list[str] | None = None,
    at_least_one: bool = True,
) -> Iterator[pd.DataFrame]:
    """A query's rows as DataFrames of at most `chunk_rows` rows, streamed from DuckDB. With
    `at_least_one`, a query without rows gives one empty chunk (its columns are known).

    With `whole` (the query sorts by those columns), rows that share their values are never
    split between chunks: a chunk ends before such a group rather than in it (a group
    larger than `chunk_rows` is a chunk of its own).

    The query runs when the first chunk is asked for, and holds `con` until the last: run
    nothing else on `con` in between.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, not {chunk_rows}")
    result = con.execute(sql, params)
    vectors = max(1, chunk_rows // VECTOR_ROWS)
    held = None  # with `whole`: rows whose group may go on in the next fetch
    given = False
    while True:
        fetched = result.fetch_df_chunk(vectors)
        ended = fetched.empty
        if whole is None:
            frames = [fetched.iloc[i : i + chunk_rows] for i in range(0, len(fetched), chunk_rows)]
        else:
            frame = fetched if held is None else pd.concat([held, fetched], ignore_index=True)
            frames, held = cut_at_groups(frame, whole, chunk_rows, ended)
        for frame in frames:
            given = True
            yield frame
        if ended:
            if at_least_one and not given:
                yield fetched
            return


def cut_at_groups(
    frame: pd.DataFrame, whole: list[str], chunk_rows: int, ended: bool
) -> tuple[list[pd.DataFrame], pd.DataFrame | None]:
    """Chunks of a frame sorted by `whole`, cut between groups; and the rows held back (the
    last group, which may go on), unless the query `ended`."""
    if frame.empty:
        return [], None
    keys = frame[whole].reset_index(drop=True)
    starts = np.flatnonzero((keys != keys.shift()).any(axis=1).to_numpy())  # where each group begins
    frames, begin = [], 0
    while begin + chunk_rows < len(frame) or (ended and begin < len(frame)):
        end = begin + chunk_rows
        if end >= len(frame):  # the query ended: the rest is the last chunk
            end = len(frame)
        else:
            end = starts[bisect_right(starts, end) - 1]  # back to the start of the group `end` is in
            if end <= begin:  # one group longer than a chunk: it is the chunk
                after = bisect_right(starts, begin)
                if after < len(starts):
                    end = starts[after]
                elif ended:
                    end = len(frame)
                else:
                    break  # it may go on in the next fetch
        frames.append(frame.iloc[begin:end])
        begin = end
    rest = frame.iloc[begin:]
    return frames, (None if ended or rest.empty else rest)


def crawl_rows(
    con: duckdb.DuckDBPyConnection, table: str, crawl_id: int, key: list[str], chunk_rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """One crawl's rows of a raw table, chunk by chunk (see `chunks`), all rows of a `key` that
    repeats in one chunk (see REPEATED_KEYS)."""
    if table not in CRAWL_TABLES:
        raise ValueError(f"not a raw table of a crawl: {table}")
    names = ", ".join(key)
    repeated = REPEATED_KEYS.format(key=names, table=table)
    params = {"crawl_id": crawl_id}
    if not con.execute(f"SELECT count(*) FROM ({repeated})", params).fetchall()[0][0]:
        yield from chunks(con, CRAWL_ROWS.format(table=table), params, chunk_rows)
        return
    sql = {"table": table, "key": names, "repeated": repeated}
    yield from chunks(con, REPEATED_ROWS.format(**sql), params, chunk_rows, whole=key)
    yield from chunks(con, UNIQUE_ROWS.format(**sql), params, chunk_rows, at_least_one=False)


def crawl_counts(con: duckdb.DuckDBPyConnection, crawl_id: int) -> dict[str, int]:
    """Rows per raw table of one crawl, counted in SQL."""
    counts = con.execute(CRAWL_COUNTS, {"crawl_id": crawl_id}).fetchall()[0]
    return dict(zip(CRAWL_TABLES, counts, strict=True))


def store_validations(
    con: duckdb.DuckDBPyConnection, runs: pd.DataFrame, results: pd.DataFrame, quarantine: pd.DataFrame
) -> None:
    """Record suite runs, their expectation results and the rows they quarantine, together."""
    with transaction(con):
        insert_frame(con, "quality.validation_runs", runs)
        insert_frame(con, "quality.expectation_results", results)
        if len(quarantine):
            insert_frame(con, "quality.quarantined_rows", quarantine)


def previous_crawl_counts(con: duckdb.DuckDBPyConnection, crawl_id: int, source: str) -> tuple[int, int] | None:
    """(profiles, posts) of the same source's readable crawl before `crawl_id`, if any."""
    rows = con.execute(PREVIOUS_CRAWL_COUNTS, [crawl_id, source, list(READABLE_RUNS)]).fetchall()
    return rows[0] if rows else None


def crawl_reached(con: duckdb.DuckDBPyConnection, crawl_id: int) -> int:
    """Accounts of the crawl's plan it reached (every outcome but deferred)."""
    return con.execute(CRAWL_REACHED, [crawl_id]).fetchall()[0][0]


def previous_feature_count(con: duckdb.DuckDBPyConnection, feature_date: date) -> int | None:
    count = con.execute(PREVIOUS_FEATURE_COUNT, [feature_date]).fetchall()[0][0]
    return count or None


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """A table's columns as its DDL declares them, in order: the one definition of its shape."""
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return [c for (c,) in rows]
