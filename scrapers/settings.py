"""Scrapy settings. Override any of them per crawl with `scrapy crawl ... -s NAME=VALUE`.

Plain constants: `kic crawl` (and the nightly flow) pass what a crawl needs from the
project's settings with `-s`. Secrets never pass through here, so Scrapy cannot log them:
the spider reads them from its environment (KIC_WEB_SESSIONID, KIC_GRAPH_ACCESS_TOKEN).
"""

BOT_NAME = "scrapers"
SPIDER_MODULES = ["scrapers.spiders"]
NEWSPIDER_MODULE = "scrapers.spiders"

# Identify the crawler honestly.
USER_AGENT = "korea-influencer-clustering/0.1 (+https://github.com/korea-influencer-clustering)"
# The JSON endpoints read are the web client's own API and the official Graph API, not
# pages for search engines; politeness is enforced by the throttling below instead.
ROBOTSTXT_OBEY = False

# --- Polite crawling ------------------------------------------------------------------
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 2.0  # seconds between requests to a domain, randomized 0.5x-1.5x
RANDOMIZE_DOWNLOAD_DELAY = True
DOWNLOAD_TIMEOUT = 30
AUTOTHROTTLE_ENABLED = True  # slows down further when the server answers slowly
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0

# Retries with backoff on 5xx, waiting at least the server's Retry-After. Throttled answers
# (429, Graph rate-limit codes) are the quota middleware's: retried after the server's wait,
# never counted as the account's failure.
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408]
RETRY_BACKOFF_BASE = 5.0  # seconds, doubled at every retry
RETRY_BACKOFF_MAX = 300.0
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "scrapers.middlewares.BackoffRetryMiddleware": 550,
    # Above the retries: it sees answers first (a throttle is retried here, not there) and
    # counts a request only once it leaves for the server.
    "scrapers.middlewares.QuotaMiddleware": 560,
    "scrapers.middlewares.LocalTargetMiddleware": 570,
}
# A server on this machine (the sandbox, a fixture server) is crawled without the politeness
# delay, also by a hand-run `scrapy crawl`; its quota is kept (QuotaMiddleware).
DOWNLOAD_SLOTS = {host: {"delay": 0, "concurrency": 8} for host in ("127.0.0.1", "localhost", "::1")}

# --- Quotas: calls per credential per rolling window (scrapers.quotas) -------------------
# Graph API Platform Rate Limits: 200 calls per user token per rolling hour.
KIC_GRAPH_QUOTA_CALLS = 200
KIC_GRAPH_QUOTA_WINDOW_SECONDS = 3600.0
# The web client publishes no limit and sends no usage headers: instaloader's RateController
# paces these JSON endpoints at 75 calls per 11 minutes per session.
KIC_WEB_QUOTA_CALLS = 75
KIC_WEB_QUOTA_WINDOW_SECONDS = 660.0
KIC_QUOTA_TARGET_USAGE = 0.85  # slow down before the limit: use at most this share of it
KIC_QUOTA_MAX_WAIT_SECONDS = 3600.0  # a longer wait for the quota stops the shard (the rest deferred)
KIC_QUOTA_MAX_THROTTLED = 5  # throttled answers to one request before the shard stops
KIC_QUOTA_DEADLINE = 0.0  # the crawl window's end (epoch seconds): no wait past it; 0: none
# A login or checkpoint answer stops the crawl (see the spider): never push on through one.

# --- Output ---------------------------------------------------------------------------
# The crawl lands Parquet files; it never opens the warehouse (`kic load` moves them in).
ITEM_PIPELINES = {"scrapers.pipelines.LandingPipeline": 300}
KIC_LANDING_URL = "data/landing"  # a folder, or any fsspec URL (s3://bucket/landing, …)
KIC_CRAWL_KEY = ""  # set by `kic crawl` and the nightly flow; empty: the crawl names itself
KIC_SHARD = "shard-001-of-001"  # which part of the crawl this process is
KIC_BATCH_SIZE = 200  # accounts per landed batch
KIC_PROGRESS = False  # progress lines on stdout, for `kic crawl`
EXTENSIONS = {"scrapers.extensions.ProgressLines": 500, "scrapers.extensions.FrozenStartupHeap": 510}

# --- Sources --------------------------------------------------------------------------
KIC_WEB_BASE_URL = "https://www.instagram.com"
KIC_WEB_APP_ID = "936619743392459"  # the web client's X-IG-App-ID
KIC_GRAPH_BASE_URL = "https://graph.facebook.com"
KIC_GRAPH_API_VERSION = "v21.0"
KIC_GRAPH_USER_ID = ""  # the app's own Instagram business account id (source graph)
KIC_POSTS_PER_ACCOUNT = 12  # the profile grid's 12, as the study read
KIC_TAG_MAX_PAGES = 3
KIC_TIMEZONE = "Asia/Seoul"  # the day a crawl describes is a day in this zone

# No control servers: runs are driven by `kic crawl` and Prefect, not over a socket.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"
