"""Writing crawled accounts into the warehouse's raw layer, in batches."""

from __future__ import annotations

import time
from contextlib import ExitStack

import pandas as pd

from scrapers.items import AccountItem, DiscoveredAccountItem
from scrapers.signals import crawl_run_opened
from warehouse import raw, watchlist
from warehouse.db import connect, transaction
from warehouse.vocabulary import AccountStatus, RunStatus

# Nullable integer columns: pandas would otherwise turn a None among ints into a float.
NULLABLE_INTS = {
    "profiles": ["followers", "follows", "media_count"],
    "posts": ["likes", "comments", "views"],
    "account_outcomes": ["http_status"],
}

INTERRUPT_STALE_RUNS = """
UPDATE raw.crawl_runs
SET status = $interrupted, finished_at = now(),
    message = 'the crawling process ended without closing its run'
WHERE status = $running
"""


class DuckDBPipeline:
    """Stores each account's outcome, profile and posts in raw.*, tagged with the crawl run.

    Holds one connection for the crawl. Accounts are buffered and written
    KIC_BATCH_SIZE at a time, each batch in one transaction, so an account's rows land
    together; whatever was written stays if the crawl is interrupted.
    """

    def __init__(self, crawler, warehouse: str, batch_size: int, lock_wait_seconds: float):
        self.crawler = crawler
        self.warehouse = warehouse
        self.batch_size = batch_size
        self.lock_wait_seconds = lock_wait_seconds
        self.pending: list[AccountItem] = []
        self.discovered: list[DiscoveredAccountItem] = []
        self.written: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(
            crawler,
            settings.get("KIC_WAREHOUSE"),
            settings.getint("KIC_BATCH_SIZE"),
            settings.getfloat("KIC_LOCK_WAIT_SECONDS"),
        )

    def open_spider(self):
        spider = self.crawler.spider
        self.resources = ExitStack()
        self.con = self.resources.enter_context(connect(self.warehouse, lock_wait_seconds=self.lock_wait_seconds))
        # This process holds the only write lock on the file, so any run still marked
        # running belongs to a crawl that died without closing it.
        self.con.execute(
            INTERRUPT_STALE_RUNS, {"interrupted": RunStatus.INTERRUPTED, "running": RunStatus.RUNNING}
        ).fetchall()
        self.crawl_id = raw.open_run(
            self.con, spider.source, spider.base_url, spider.as_of, accounts_requested=len(spider.requested)
        )
        spider.logger.info("crawl run %d into %s", self.crawl_id, self.warehouse)
        self.crawler.signals.send_catch_log(crawl_run_opened, crawl_id=self.crawl_id, spider=spider)

    def process_item(self, item):
        if isinstance(item, DiscoveredAccountItem):
            self.discovered.append(item)
        elif item["username"] in self.written:
            # The same account twice in one run: the first answer stands.
            self.crawler.stats.inc_value("kic/duplicate_accounts")
        else:
            self.written.add(item["username"])
            self.pending.append(item)
        if len(self.pending) + len(self.discovered) >= self.batch_size:
            self.flush()
        return item

    def flush(self) -> None:
        if not self.pending and not self.discovered:
            return
        started = time.perf_counter()
        frames = rows_of(self.pending, self.crawl_id)
        with transaction(self.con):
            for table, frame in frames.items():
                raw.append(self.con, table, frame)
            for tag in {d["tag"] for d in self.discovered}:
                watchlist.add(self.con, [d["username"] for d in self.discovered if d["tag"] == tag], f"tag:{tag}")
        self.crawler.stats.inc_value("kic/accounts_written", len(self.pending))
        self.crawler.stats.inc_value("kic/posts_written", len(frames["posts"]))
        self.crawler.stats.inc_value("kic/rows_written", sum(len(f) for f in frames.values()))
        self.crawler.stats.inc_value("kic/write_seconds", time.perf_counter() - started)
        self.pending, self.discovered = [], []

    def close_spider(self):
        spider = self.crawler.spider
        try:
            self.flush()
            # Nothing is dropped silently: every account asked for gets an outcome. A run
            # that could not reach them all (stopped, blocked) is marked interrupted.
            unreached = [u for u in spider.requested if u not in self.written]
            why = getattr(spider, "close_reason", None) or "stopped"
            with transaction(self.con):
                if unreached:
                    raw.append(
                        self.con,
                        "account_outcomes",
                        pd.DataFrame(
                            {
                                "crawl_id": self.crawl_id,
                                "username": unreached,
                                "status": AccountStatus.ERROR,
                                "reason": f"not crawled: the crawl closed early ({why})",
                                "fetched_at": raw.utcnow(),
                            }
                        ),
                    )
                raw.close_run(
                    self.con,
                    self.crawl_id,
                    RunStatus.INTERRUPTED if unreached else RunStatus.SUCCEEDED,
                    stats=self.crawler.stats.get_stats(),
                    message=f"{len(unreached)} account(s) not crawled: {why}" if unreached else None,
                )
        finally:
            self.resources.close()


def rows_of(items: list[AccountItem], crawl_id: int) -> dict[str, pd.DataFrame]:
    """The raw.account_outcomes, raw.profiles and raw.posts rows of a batch of accounts."""
    outcomes, profiles, posts = [], [], []
    for item in items:
        stamp = {"crawl_id": crawl_id, "username": item["username"], "fetched_at": item["fetched_at"]}
        outcomes.append(
            {
                **stamp,
                "status": item["status"],
                "reason": item.get("reason"),
                "http_status": item.get("http_status"),
                "detail": item.get("detail"),
            }
        )
        if item.get("profile"):
            profiles.append({**stamp, **item["profile"]})
        posts.extend({**stamp, **post} for post in item.get("posts") or [])
    frames = {
        "account_outcomes": pd.DataFrame(outcomes),
        "profiles": pd.DataFrame(profiles),
        "posts": pd.DataFrame(posts),
    }
    for table, columns in NULLABLE_INTS.items():
        present = [c for c in columns if c in frames[table]]
        frames[table] = frames[table].astype({c: "Int64" for c in present})
    return frames
