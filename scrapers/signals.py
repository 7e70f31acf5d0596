"""The project's own Scrapy signals."""

# Sent by the DuckDB pipeline once the crawl run is recorded, with `crawl_id`.
crawl_run_opened = object()
