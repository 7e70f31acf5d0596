-- Views now live in warehouse/views/, apart from the table migrations: every writer
-- re-applies them when their definitions change. Drop the ones earlier migrations made.
DROP VIEW clusters.changes;
DROP VIEW clusters.latest_profiles;
DROP VIEW clusters.latest_assignments;
DROP VIEW staging.media_means;
DROP VIEW staging.account_crawls;

-- Grain: one row: the fingerprint of the view definitions last applied. Key: fingerprint.
CREATE TABLE meta.applied_views (
    fingerprint VARCHAR PRIMARY KEY,             -- sha256 of warehouse/views/*.sql
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
