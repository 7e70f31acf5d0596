"""Landing crawled accounts as Parquet files, in batches, for the loader to move into raw.*."""

from __future__ import annotations

import time
import uuid

import pandas as pd
from scrapy.utils.defer import deferred_from_coro

from scrapers.items import AccountItem, DiscoveredAccountItem
from scrapers.signals import crawl_run_opened, landing_failed
from warehouse.landing import Landing, new_crawl_key
from warehouse.util import utcnow
from warehouse.vocabulary import AccountStatus, RunStatus

# Nullable integer columns: pandas would otherwise turn a None among ints into a float.
NULLABLE_INTS = {
    "profiles": ["followers", "follows", "media_count"],
    "posts": ["likes", "comments", "views"],
    "account_outcomes": ["http_status"],
}
# An outcome's fields an item may lack (status it always has).
OUTCOME_FIELDS = ("reason", "http_status", "detail")


class LandingPipeline:
    """Lands each account's outcome, profile and posts as Parquet files, in batches.

    The crawl never opens the warehouse: a loader moves what landed into raw.* afterwards
    (`kic load`, the nightly flow), holding the warehouse's write lock only for that. Accounts
    are buffered and landed KIC_BATCH_SIZE at a time; whatever landed stays loadable if the
    crawl is interrupted. At the end, every account asked for and not answered gets an outcome.
    """

    def __init__(self, crawler, landing_url: str, crawl_key: str | None, shard: str, batch_size: int):
        self.crawler = crawler
        self.landing = Landing(landing_url)
        self.crawl_key = crawl_key
        self.shard = shard
        self.batch_size = batch_size
        self.attempt = uuid.uuid4().hex[:8]  # this process's batches never overwrite an earlier attempt's
        self.batch = 0
        self.pending: list[AccountItem] = []
        self.discovered: list[DiscoveredAccountItem] = []
        self.written: set[str] = set()
        self.failed: OSError | None = None  # landing failed: nothing more is written
        self.closing = None

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        return cls(
            crawler,
            settings.get("KIC_LANDING_URL"),
            settings.get("KIC_CRAWL_KEY") or None,
            settings.get("KIC_SHARD"),
            settings.getint("KIC_BATCH_SIZE"),
        )

    def open_spider(self):
        spider = self.crawler.spider
        if self.crawl_key is None:
            # A crawl started by hand (`scrapy crawl instagram …`): it records its own request.
            self.crawl_key = new_crawl_key(spider.source, spider.as_of)
            self.landing.open_crawl(
                self.crawl_key, spider.source, spider.base_url, spider.as_of, {self.shard: list(spider.requested)}
            )
        self.landing.mark_running(self.crawl_key, self.shard)
        spider.logger.info("crawl %s, %s: landing in %s", self.crawl_key, self.shard, self.landing.url)
        self.crawler.signals.send_catch_log(crawl_run_opened, crawl_key=self.crawl_key, spider=spider)

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
        if (not self.pending and not self.discovered) or self.failed is not None:
            return
        started = time.perf_counter()
        frames = rows_of(self.pending)
        frames["discovered"] = pd.DataFrame(
            {"username": [d["username"] for d in self.discovered], "tag": [d["tag"] for d in self.discovered]},
            dtype=str,
        )
        self.batch += 1
        try:
            self.landing.put_batch(self.crawl_key, self.shard, f"{self.attempt}-{self.batch:06d}", frames)
        except OSError as exc:
            self.stop(exc)
            return
        self.crawler.stats.inc_value("kic/accounts_written", len(self.pending))
        self.crawler.stats.inc_value("kic/posts_written", len(frames["posts"]))
        self.crawler.stats.inc_value("kic/rows_written", sum(len(f) for f in frames.values()))
        self.crawler.stats.inc_value("kic/write_seconds", time.perf_counter() - started)
        self.pending, self.discovered = [], []

    def stop(self, exc: OSError) -> None:
        """The landing area refused a write: stop crawling (every further account would be
        fetched for nothing) and say why; what landed before stays committed."""
        self.failed = exc
        where = exc.filename or self.landing.url
        self.crawler.spider.logger.error("landing in %s failed: %s; the crawl stops", where, exc.strerror or exc)
        reason = exc.strerror or str(exc)
        self.crawler.signals.send_catch_log(
            landing_failed, errno=exc.errno, file=str(where), reason=reason, spider=self.crawler.spider
        )
        self.closing = deferred_from_coro(self.crawler.engine.close_spider_async(reason="landing_failed"))

    def close_spider(self):
        spider = self.crawler.spider
        self.flush()
        if self.failed is not None:
            return  # the shard stays open: the loader closes it, a retry crawls what did not land
        # Nothing is dropped silently: every account asked for gets an outcome (tag crawls
        # add accounts as they find them, so the spider's list is the one to check).
        unreached = [u for u in spider.requested if u not in self.written]
        why = getattr(spider, "close_reason", None) or "stopped"
        if getattr(spider, "quota_stop", None):
            # Stopped for the quota: not the accounts' failure; the next night plans them first.
            status, reason = AccountStatus.DEFERRED, f"deferred: {why}"
        else:
            status, reason = AccountStatus.ERROR, f"not crawled: the crawl closed early ({why})"
        if unreached:
            outcomes = pd.DataFrame({"username": unreached, "status": status, "reason": reason, "fetched_at": utcnow()})
            self.batch += 1
            batch = f"{self.attempt}-{self.batch:06d}"
            self.landing.put_batch(self.crawl_key, self.shard, batch, {"account_outcomes": outcomes})
        self.landing.close_shard(
            self.crawl_key,
            self.shard,
            RunStatus.INTERRUPTED if unreached else RunStatus.SUCCEEDED,
            message=f"{len(unreached)} account(s) {status_words(status)}: {why}" if unreached else None,
            stats=self.crawler.stats.get_stats(),
        )


def status_words(status: str) -> str:
    return "deferred" if status == AccountStatus.DEFERRED else "not crawled"


def rows_of(items: list[AccountItem]) -> dict[str, pd.DataFrame]:
    """The raw.account_outcomes, raw.profiles and raw.posts rows of a batch (the loader adds the crawl id).

    Built column by column, each row's values read straight from its item (no merged dict per
    row, no list-of-dicts frame and cast): a batch's frames in under half the time."""
    profiled = [item for item in items if item.get("profile")]
    return {
        "account_outcomes": frame_of(
            items,
            [{"status": item["status"], **{k: item.get(k) for k in OUTCOME_FIELDS}} for item in items],
            NULLABLE_INTS["account_outcomes"],
        ),
        "profiles": frame_of(profiled, [item["profile"] for item in profiled], NULLABLE_INTS["profiles"]),
        "posts": frame_of(
            [item for item in items for _ in item.get("posts") or []],  # the item of each post
            [post for item in items for post in item.get("posts") or []],
            NULLABLE_INTS["posts"],
        ),
    }


def frame_of(items: list[AccountItem], rows: list[dict], nullable_ints: list[str]) -> pd.DataFrame:
    """A frame of `rows` (every key any row has, None where a row lacks it), each stamped with the
    username and fetched_at of its item; the nullable ints as Int64 (a None stays NULL)."""
    names = dict.fromkeys(name for row in rows for name in row)
    columns = {stamp: [item[stamp] for item in items] for stamp in ("username", "fetched_at")} if rows else {}
    for name in names:
        values = [row.get(name) for row in rows]
        columns[name] = pd.array(values, dtype="Int64") if name in nullable_ints else values
    return pd.DataFrame(columns)
