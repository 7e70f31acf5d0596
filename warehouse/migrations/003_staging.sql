-- Layer `staging`: views that put raw rows of every source into one shape, leaving out
-- rows that validation quarantined. No storage.
CREATE SCHEMA staging;
-- Its views (staging.account_crawls, staging.media_means) were created here until migration
-- 007 moved every view out of the migrations: each lives in transforms/sql/staging/, applied
-- by every writer. Warehouses made since get them only from there.
