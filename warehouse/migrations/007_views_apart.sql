-- Views live apart from the table migrations (today in transforms/sql/): every writer
-- re-applies them when their definitions change. Drop the ones earlier migrations made
-- (the staging views only in warehouses made before 003 stopped creating them).
DROP VIEW clusters.changes;
DROP VIEW clusters.latest_profiles;
DROP VIEW clusters.latest_assignments;
DROP VIEW IF EXISTS staging.media_means;
DROP VIEW IF EXISTS staging.account_crawls;

-- Grain: one row: the fingerprint of the view definitions last applied. Key: fingerprint.
CREATE TABLE meta.applied_views (
    fingerprint VARCHAR PRIMARY KEY,             -- sha256 of the views' SQL
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
