"""What the spider yields."""

import scrapy


class AccountItem(scrapy.Item):
    """One account's crawl: its outcome, and its profile and posts when it could be read."""

    username = scrapy.Field()
    status = scrapy.Field()  # ok | private | not_found | blocked | error | deferred
    reason = scrapy.Field()
    http_status = scrapy.Field()
    detail = scrapy.Field()  # the offending response, kept for diagnosis
    profile = scrapy.Field()  # dict of raw.profiles columns, or None
    posts = scrapy.Field()  # list of dicts of raw.posts columns
    fetched_at = scrapy.Field()


class DiscoveredAccountItem(scrapy.Item):
    """An account found posting under a hashtag, to add to the watchlist."""

    username = scrapy.Field()
    tag = scrapy.Field()
