"""Progress lines for `kic crawl`'s progress bar (off unless KIC_PROGRESS is set)."""

import json
import sys

from scrapy import signals
from scrapy.exceptions import NotConfigured

from scrapers.items import AccountItem


class ProgressLines:
    """Prints `KIC-PROGRESS {"done": n, "total": m}` to stdout after each account."""

    PREFIX = "KIC-PROGRESS "

    def __init__(self, crawler):
        self.crawler = crawler
        self.done = 0

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.getbool("KIC_PROGRESS"):
            raise NotConfigured
        extension = cls(crawler)
        crawler.signals.connect(extension.item_scraped, signal=signals.item_scraped)
        return extension

    def item_scraped(self, item, spider):
        if isinstance(item, AccountItem):
            self.done += 1
            total = len(getattr(spider, "requested", ())) or self.done
            print(self.PREFIX + json.dumps({"done": self.done, "total": total}), file=sys.stdout, flush=True)
