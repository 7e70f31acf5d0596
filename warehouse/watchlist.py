"""The watchlist: accounts crawled when a crawl does not name its own."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pandas as pd

from warehouse.db import insert_frame, scalar
from warehouse.util import utcnow

ACTIVE_USERNAMES = "SELECT username FROM watchlist.accounts WHERE active ORDER BY added_at, username"
LIST_ACCOUNTS = "SELECT username, added_at, added_from, active FROM watchlist.accounts ORDER BY added_at, username"


def add(con: duckdb.DuckDBPyConnection, usernames: Iterable[str], added_from: str) -> int:
    """Watch these accounts (again, if they were removed); return how many were new."""
    names = list(dict.fromkeys(usernames))
    if not names:
        return 0
    before = scalar(con, "SELECT count(*) FROM watchlist.accounts")
    con.execute(
        "UPDATE watchlist.accounts SET active = true WHERE NOT active AND username IN (SELECT unnest(?))", [names]
    ).fetchall()
    rows = pd.DataFrame({"username": names, "added_at": utcnow(), "added_from": added_from, "active": True})
    insert_frame(con, "watchlist.accounts", rows, skip_existing=True)
    return scalar(con, "SELECT count(*) FROM watchlist.accounts") - before


def remove(con: duckdb.DuckDBPyConnection, usernames: Iterable[str]) -> int:
    """Stop watching these accounts (their crawled data stays); return how many were active."""
    names = list(dict.fromkeys(usernames))
    return scalar(
        con,
        "WITH changed AS (UPDATE watchlist.accounts SET active = false "
        "WHERE active AND username IN (SELECT unnest(?)) RETURNING 1) SELECT count(*) FROM changed",
        [names],
    )


def active(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [u for (u,) in con.execute(ACTIVE_USERNAMES).fetchall()]


def active_count(con: duckdb.DuckDBPyConnection) -> int:
    return scalar(con, "SELECT count(*) FROM watchlist.accounts WHERE active")


def list_accounts(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(LIST_ACCOUNTS).df()
