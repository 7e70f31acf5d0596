"""The crawl process's extensions: progress lines for `kic crawl`'s progress bar (off unless
KIC_PROGRESS is set), and a heap frozen once the crawl has started.

The crawl also reports its own crawl key on the progress channel, so the parent process never
has to guess which run is its own.
"""

import gc
import json
import sys

from scrapy import signals
from scrapy.exceptions import NotConfigured

from scrapers.items import AccountItem
from scrapers.signals import crawl_run_opened, landing_failed


class ProgressLines:
    """Prints `KIC-PROGRESS {"crawl_key": k, "done": n, "total": m}` to stdout: once the crawl
    has its landing place, then after each account; and, if landing fails, with `failed`
    (errno, file, reason)."""

    PREFIX = "KIC-PROGRESS "

    def __init__(self, crawler):
        self.crawler = crawler
        self.crawl_key = None
        self.done = 0

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.getbool("KIC_PROGRESS"):
            raise NotConfigured
        extension = cls(crawler)
        crawler.signals.connect(extension.run_opened, signal=crawl_run_opened)
        crawler.signals.connect(extension.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(extension.landing_failed, signal=landing_failed)
        return extension

    def run_opened(self, crawl_key, spider):
        self.crawl_key = crawl_key
        self.emit(spider)

    def item_scraped(self, item, spider):
        if isinstance(item, AccountItem):
            self.done += 1
            self.emit(spider)

    def landing_failed(self, errno, file, reason, spider):
        self.emit(spider, failed={"errno": errno, "file": file, "reason": reason})

    def emit(self, spider, **extra):
        total = len(getattr(spider, "requested", ())) or self.done
        line = {"crawl_key": self.crawl_key, "done": self.done, "total": total, **extra}
        print(self.PREFIX + json.dumps(line), file=sys.stdout, flush=True)


class FrozenStartupHeap:
    """Moves every object alive once the engine has started (the modules imported, the spider,
    the pipelines) out of the garbage collector's reach: they live as long as the crawl, and
    the reactor allocates so fast that full collections run all the time, each walking them
    all again (pandas and DuckDB, imported by the landing pipeline, are most of them). Frozen,
    a local crawl with the landing pipeline made about 5 % more accounts a second
    (benchmarks/crawl_throughput.py: 365 against 348, means of 4 and 2 runs). What is
    allocated later is collected as usual, and a crawl is a process of its own
    (`scrapy crawl`, started by pipeline.crawl): nothing frozen outlives it."""

    @classmethod
    def from_crawler(cls, crawler):
        extension = cls()
        crawler.signals.connect(extension.engine_started, signal=signals.engine_started)
        return extension

    def engine_started(self):
        gc.collect()  # what import and set-up left behind goes now, not into the frozen heap
        gc.freeze()
