-- Crawls land Parquet files first (warehouse/landing.py); one loader moves them into raw.*.

-- The crawl's name in the landing area; NULL for imports and for crawls from before landing.
-- Unique among crawls that have one (tested).
ALTER TABLE raw.crawl_runs ADD COLUMN landing_key VARCHAR;

-- Grain: one row per landed file loaded into the warehouse. Key: file.
-- A file recorded here is never loaded again; its crawl's folder may be removed after the
-- retention period (landing_retention_days).
CREATE TABLE raw.landed_files (
    crawl_id    BIGINT NOT NULL,
    file        VARCHAR PRIMARY KEY,      -- path under the landing root: <crawl_key>/<shard>/<table>-<batch>.parquet
    table_name  VARCHAR NOT NULL,         -- account_outcomes | profiles | posts | discovered
    row_count   BIGINT NOT NULL,
    loaded_at   TIMESTAMPTZ NOT NULL
);
