"""The Instagram spider: one profile (and its latest posts) per account, from either source.

scrapy crawl instagram -a usernames=name1,name2 [-a source=web|graph] [-a date=YYYY-MM-DD]
scrapy crawl instagram -a tag=뷰티          # discover accounts posting under a hashtag

Lands what it fetched under KIC_LANDING_URL; `kic load` moves it into the warehouse.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import scrapy
from scrapy.exceptions import CloseSpider

from scrapers.items import AccountItem, DiscoveredAccountItem
from scrapers.parsing import (
    BLOCK_PATHS,
    DETAIL_LIMIT,
    BadJson,
    Outcome,
    load_json,
    parse_graph_page,
    parse_tag_page,
    parse_web_profile,
)
from scrapers.usernames import normalize_account
from warehouse.util import utcnow
from warehouse.vocabulary import CRAWL_SOURCES, AccountStatus

GRAPH_MEDIA_FIELDS = "id,like_count,comments_count,media_type,media_product_type,timestamp"


class InstagramSpider(scrapy.Spider):
    name = "instagram"

    def __init__(self, usernames=None, usernames_file=None, tag=None, source="web", date=None, **kwargs):
        super().__init__(**kwargs)
        if source not in CRAWL_SOURCES:
            raise ValueError(f"source must be one of {', '.join(CRAWL_SOURCES)}, not {source!r}")
        self.source = source
        self.tag = tag
        self.as_of_text = date
        self.requested: dict[str, None] = {}  # accounts to crawl, in order, each once
        names = [n for n in (usernames or "").split(",") if n.strip()]
        if usernames_file:
            names += Path(usernames_file).read_text(encoding="utf-8").split()
        for name in names:
            username = normalize_account(name)
            if username is None:
                raise ValueError(f"not an Instagram username or profile URL: {name!r}")
            self.requested[username] = None

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        zone = ZoneInfo(settings.get("KIC_TIMEZONE"))
        spider.as_of = date.fromisoformat(spider.as_of_text) if spider.as_of_text else datetime.now(zone).date()
        spider.web_base_url = settings.get("KIC_WEB_BASE_URL").rstrip("/")
        spider.graph_base_url = settings.get("KIC_GRAPH_BASE_URL").rstrip("/")
        spider.posts_per_account = settings.getint("KIC_POSTS_PER_ACCOUNT")
        spider.base_url = spider.graph_base_url if spider.source == "graph" else spider.web_base_url
        if not spider.requested and not spider.tag:
            # The crawler never opens the warehouse: `kic crawl` hands it the watchlist.
            raise ValueError("name the accounts (-a usernames=a,b or -a usernames_file=FILE) or a hashtag (-a tag=…)")
        # Secrets come from the environment, never from Scrapy settings (which Scrapy logs).
        session = os.environ.get("KIC_WEB_SESSIONID")
        spider.web_cookies = {"sessionid": session} if session else {}
        if spider.source == "graph":
            spider.graph_user_id = settings.get("KIC_GRAPH_USER_ID")
            spider.graph_token = os.environ.get("KIC_GRAPH_ACCESS_TOKEN")
            if not spider.graph_user_id or not spider.graph_token:
                raise ValueError("source graph needs -s KIC_GRAPH_USER_ID=... and the token in KIC_GRAPH_ACCESS_TOKEN")
        return spider

    # --- requests -------------------------------------------------------------------

    async def start(self):
        if self.tag:
            yield self.tag_request(self.tag)
        for username in list(self.requested):
            yield self.profile_request(username)

    def profile_request(self, username: str) -> scrapy.Request:
        if self.source == "graph":
            return self.graph_request(username, after=None, posts=[])
        return scrapy.Request(
            f"{self.web_base_url}/api/v1/users/web_profile_info/?username={quote(username)}",
            headers=self.web_headers(),
            cookies=self.web_cookies,
            callback=self.parse_web_profile,
            errback=self.failed,
            cb_kwargs={"username": username},
            # Every answer reaches the callback, so that each gets an outcome; a redirect
            # is read (it usually means a login wall), never followed.
            meta={"handle_httpstatus_all": True, "dont_redirect": True},
        )

    def web_headers(self) -> dict:
        return {"X-IG-App-ID": self.settings.get("KIC_WEB_APP_ID"), "Accept": "application/json"}

    def tag_request(self, tag: str, max_id: str | None = None, page: int = 1) -> scrapy.Request:
        query = {"tag_name": tag, **({"max_id": max_id} if max_id else {})}
        return scrapy.Request(
            f"{self.web_base_url}/api/v1/tags/web_info/?{urlencode(query)}",
            headers=self.web_headers(),
            cookies=self.web_cookies,
            callback=self.parse_tag,
            cb_kwargs={"tag": tag, "page": page},
            meta={"dont_redirect": True},
        )

    def graph_request(self, username: str, after: str | None, posts: list) -> scrapy.Request:
        remaining = self.posts_per_account - len(posts)
        media = "media" + (f".after({after})" if after else "") + f".limit({remaining})"
        fields = (
            f"business_discovery.username({username})"
            f"{{followers_count,follows_count,media_count,{media}{{{GRAPH_MEDIA_FIELDS}}}}}"
        )
        return scrapy.Request(
            f"{self.graph_base_url}/{self.settings.get('KIC_GRAPH_API_VERSION')}/{self.graph_user_id}?"
            + urlencode({"fields": fields}),
            # The token travels in a header, never in the URL that Scrapy logs.
            headers={"Authorization": f"Bearer {self.graph_token}"},
            callback=self.parse_graph,
            errback=self.failed,
            cb_kwargs={"username": username, "posts": posts},
            meta={"handle_httpstatus_all": True, "dont_redirect": True},
            dont_filter=True,
        )

    # --- answers --------------------------------------------------------------------

    def item(self, username: str, outcome: Outcome) -> AccountItem:
        return AccountItem(
            username=username,
            status=outcome.status,
            reason=outcome.reason,
            http_status=outcome.http_status,
            detail=outcome.detail,
            profile=outcome.profile,
            posts=outcome.posts,
            fetched_at=utcnow(),
        )

    def read(self, response) -> tuple[Any, Outcome | None]:
        """The answer's JSON, or the outcome that its status or body already decides."""
        status = response.status
        if 300 <= status < 400:
            location = response.headers.get(b"Location", b"").decode("latin-1")
            if any(path in location for path in BLOCK_PATHS):
                return None, Outcome(AccountStatus.BLOCKED, f"redirected to {location}", status)
            return None, Outcome(AccountStatus.ERROR, f"unexpected redirect to {location}", status)
        if status == 429:
            return None, Outcome(AccountStatus.RATE_LIMITED, "HTTP 429: throttled", status)
        if status >= 500:
            return None, Outcome(AccountStatus.ERROR, f"HTTP {status} after retries", status)
        try:
            payload = load_json(response.body)
        except BadJson as exc:
            return None, Outcome(AccountStatus.ERROR, str(exc), status, detail=response.text[:DETAIL_LIMIT])
        if payload is None:
            return None, Outcome(AccountStatus.NOT_FOUND, f"HTTP {status}, not a JSON answer", status)
        return payload, None

    def parse_web_profile(self, response, username: str):
        payload, outcome = self.read(response)
        if outcome is None:
            outcome = parse_web_profile(payload, response.status)
            if outcome.status == AccountStatus.OK and response.status != 200:
                outcome = Outcome(
                    AccountStatus.ERROR, f"HTTP {response.status}", response.status, detail=response.text[:DETAIL_LIMIT]
                )
        outcome.posts = outcome.posts[: self.posts_per_account]
        yield self.item(username, outcome)
        if outcome.status == AccountStatus.BLOCKED:
            self.stop_blocked(username, outcome)

    def parse_graph(self, response, username: str, posts: list):
        payload, outcome = self.read(response)
        after = None
        if outcome is None:
            outcome, after = parse_graph_page(payload, response.status)
        if outcome.status == AccountStatus.OK:
            outcome.posts = posts + outcome.posts
            if after and len(outcome.posts) < self.posts_per_account:
                yield self.graph_request(username, after, outcome.posts)
                return
            outcome.posts = outcome.posts[: self.posts_per_account]
        yield self.item(username, outcome)
        if outcome.status == AccountStatus.BLOCKED:
            self.stop_blocked(username, outcome)

    def stop_blocked(self, username: str, outcome: Outcome):
        """A login wall or checkpoint: stop at once rather than hammer on it."""
        self.close_reason = f"blocked at {username}: {outcome.reason}"
        raise CloseSpider(self.close_reason)

    def parse_tag(self, response, tag: str, page: int):
        try:
            usernames, next_max_id = parse_tag_page(load_json(response.body) or {})
        except BadJson as exc:
            self.logger.warning("hashtag #%s page %d unreadable (%s): discovery stops here", tag, page, exc)
            return
        for username in usernames:
            yield DiscoveredAccountItem(username=username, tag=tag)
            if username not in self.requested:
                self.requested[username] = None
                yield self.profile_request(username)
        if next_max_id and page < self.settings.getint("KIC_TAG_MAX_PAGES"):
            yield self.tag_request(tag, next_max_id, page + 1)

    def failed(self, failure):
        """Network failures, after the retries: the account's outcome is an error. A request
        the quota stopped (or one cancelled as the shard stops for its quota) gets none here:
        the landing pipeline defers it."""
        if getattr(self, "quota_stop", None):
            return
        request = failure.request
        reason = f"{type(failure.value).__name__}: {failure.value}"
        yield self.item(request.cb_kwargs["username"], Outcome(AccountStatus.ERROR, reason[:500]))
