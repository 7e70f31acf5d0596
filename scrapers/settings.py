"""Scrapy settings. Override any of them per crawl with `scrapy crawl ... -s NAME=VALUE`.

Where the data goes and which servers are crawled come from the project's one settings
object (kic.settings: KIC_* environment variables and kic.toml); secrets never pass
through here, so Scrapy cannot log them.
"""

from kic.settings import load_settings

_kic = load_settings()

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

# Retries with backoff on 429 and 5xx, waiting at least the server's Retry-After.
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
RETRY_BACKOFF_BASE = 5.0  # seconds, doubled at every retry
RETRY_BACKOFF_MAX = 300.0
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "scrapers.middlewares.BackoffRetryMiddleware": 550,
}
# A login or checkpoint answer stops the crawl (see the spider): never push on through one.

# --- Output ---------------------------------------------------------------------------
ITEM_PIPELINES = {"scrapers.pipelines.DuckDBPipeline": 300}
KIC_WAREHOUSE = str(_kic.warehouse)
KIC_BATCH_SIZE = 200  # accounts per warehouse write
KIC_PROGRESS = False  # progress lines on stdout, for `kic crawl`
EXTENSIONS = {"scrapers.extensions.ProgressLines": 500}

# --- Sources --------------------------------------------------------------------------
KIC_WEB_BASE_URL = _kic.web_base_url
KIC_WEB_APP_ID = _kic.web_app_id
KIC_GRAPH_BASE_URL = _kic.graph_base_url
KIC_GRAPH_API_VERSION = _kic.graph_api_version
KIC_POSTS_PER_ACCOUNT = _kic.posts_per_account
KIC_TAG_MAX_PAGES = _kic.tag_max_pages
KIC_TIMEZONE = _kic.timezone

# No control servers: runs are driven by `kic crawl` and Prefect, not over a socket.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
FEED_EXPORT_ENCODING = "utf-8"
