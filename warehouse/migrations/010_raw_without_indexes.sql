-- The crawl-sized raw tables keep their keys without a PRIMARY KEY constraint. DuckDB checks
-- a primary key through an index that must be in memory on every insert and grows with the
-- whole history (at 10^6 accounts a night: 12 million posts a night, 1.9 GB to load one
-- night). Their keys hold by construction instead: only the loader writes them, each landed
-- file is loaded once (raw.landed_files), a batch holds each account once, and a retried
-- shard crawls only accounts no batch answered. The keys are still tested.

ALTER TABLE raw.account_outcomes RENAME TO account_outcomes_indexed;
-- Grain: one row per account per crawl, whatever happened to it. Key: (crawl_id, username).
-- status: ok | private | not_found | rate_limited | blocked | error | rejected
CREATE TABLE raw.account_outcomes (
    crawl_id    BIGINT NOT NULL,
    username    VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,
    reason      VARCHAR,
    http_status INTEGER,
    detail      VARCHAR,                     -- the offending input or response, for diagnosis
    fetched_at  TIMESTAMPTZ NOT NULL
);
INSERT INTO raw.account_outcomes SELECT * FROM raw.account_outcomes_indexed;
DROP TABLE raw.account_outcomes_indexed;

ALTER TABLE raw.profiles RENAME TO profiles_indexed;
-- Grain: one row per account per crawl. Key: (crawl_id, username).
CREATE TABLE raw.profiles (
    crawl_id          BIGINT NOT NULL,
    username          VARCHAR NOT NULL,
    user_id           VARCHAR,
    followers         BIGINT,
    follows           BIGINT,
    media_count       BIGINT,
    is_private        BOOLEAN,
    is_verified       BOOLEAN,
    is_business       BOOLEAN,
    hide_like_counts  BOOLEAN,
    fetched_at        TIMESTAMPTZ NOT NULL
);
INSERT INTO raw.profiles SELECT * FROM raw.profiles_indexed;
DROP TABLE raw.profiles_indexed;

ALTER TABLE raw.posts RENAME TO posts_indexed;
-- Grain: one row per post per crawl. Key: (crawl_id, post_id).
-- kind: image (single images and carousels) | video (non-IGTV videos, reels included) | igtv.
-- likes is NULL when the count is hidden: unknown, not zero.
CREATE TABLE raw.posts (
    crawl_id      BIGINT NOT NULL,
    post_id       VARCHAR NOT NULL,
    username      VARCHAR NOT NULL,
    shortcode     VARCHAR,
    kind          VARCHAR NOT NULL CHECK (kind IN ('image', 'video', 'igtv')),
    media_type    VARCHAR,                   -- as the source named it: GraphSidecar, CAROUSEL_ALBUM, ...
    product_type  VARCHAR,                   -- as the source named it: clips, igtv, REELS, FEED, ...
    likes         BIGINT,
    comments      BIGINT,
    views         BIGINT,
    taken_at      TIMESTAMPTZ,
    is_pinned     BOOLEAN NOT NULL DEFAULT false,
    fetched_at    TIMESTAMPTZ NOT NULL
);
INSERT INTO raw.posts SELECT * FROM raw.posts_indexed;
DROP TABLE raw.posts_indexed;
