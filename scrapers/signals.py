"""The project's own Scrapy signals."""

# Sent by the landing pipeline once the crawl has its landing place, with `crawl_key`.
crawl_run_opened = object()
