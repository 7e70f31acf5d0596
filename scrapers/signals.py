"""The project's own Scrapy signals."""

# Sent by the landing pipeline once the crawl has its landing place, with `crawl_key`.
crawl_run_opened = object()

# Sent by the landing pipeline when it cannot write (a full disk, no permission): the crawl
# stops, with `errno`, `file` and `reason` (the operating system's words).
landing_failed = object()
