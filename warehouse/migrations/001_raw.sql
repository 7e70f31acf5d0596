-- Layer `raw`: what was crawled or imported, as it came. Append-only: a new crawl or
-- import adds rows and never rewrites earlier ones. Every row carries its crawl id and
-- fetch time.
CREATE SCHEMA raw;

CREATE SEQUENCE raw.crawl_id_seq START 1;

-- Grain: one row per crawl or import. Key: crawl_id.
-- Only this run log is updated in place, to close a run (status, finished_at, counts).
CREATE TABLE raw.crawl_runs (
    crawl_id           BIGINT PRIMARY KEY DEFAULT nextval('raw.crawl_id_seq'),
    source             VARCHAR NOT NULL,     -- synthetic | csv | web | graph
    origin             VARCHAR,              -- file imported, or base URL crawled
    as_of_date         DATE NOT NULL,        -- the day the data describes
    started_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ,
    status             VARCHAR NOT NULL      -- running | succeeded | failed | interrupted
        CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    accounts_requested INTEGER,
    accounts_ok        INTEGER,
    accounts_failed    INTEGER,              -- accounts not read ok, plus rows rejected
    profiles_written   INTEGER,
    posts_written      INTEGER,
    stats              JSON,                 -- e.g. Scrapy's crawl stats
    message            VARCHAR
);

-- Grain: one row per account per crawl, whatever happened to it. Key: (crawl_id, username).
-- status: ok | private | not_found | rate_limited | blocked | error | rejected
CREATE TABLE raw.account_outcomes (
    crawl_id    BIGINT NOT NULL,
    username    VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,
    reason      VARCHAR,
    http_status INTEGER,
    detail      VARCHAR,                     -- the offending input or response, for diagnosis
    fetched_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (crawl_id, username)
);

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
    fetched_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (crawl_id, username)
);

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
    fetched_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (crawl_id, post_id)
);

-- Grain: one row per account per import. Key: (crawl_id, username).
-- The study's CSVs hold per-account means over the visible posts, not posts: they are
-- kept as such here, never turned into invented posts.
CREATE TABLE raw.imported_media_means (
    crawl_id       BIGINT NOT NULL,
    username       VARCHAR NOT NULL,
    image_love     DOUBLE NOT NULL,
    image_comment  DOUBLE NOT NULL,
    video_love     DOUBLE NOT NULL,
    video_comment  DOUBLE NOT NULL,
    igtv_love      DOUBLE NOT NULL,
    igtv_comment   DOUBLE NOT NULL,
    fetched_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (crawl_id, username)
);

-- Grain: one row per input row rejected by an import. Key: (crawl_id, line_number).
CREATE TABLE raw.rejected_rows (
    crawl_id     BIGINT NOT NULL,
    line_number  INTEGER NOT NULL,           -- 1-based line in the file, header = 1
    username     VARCHAR,
    reason       VARCHAR NOT NULL,
    content      VARCHAR NOT NULL,           -- the row as read, for diagnosis
    fetched_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (crawl_id, line_number)
);
