-- Layer `quality`: what validation found. Quarantined raw rows do not reach features.
CREATE SCHEMA quality;

-- Grain: one row per validation of one table's rows (a suite run). Key: validation_id.
CREATE TABLE quality.validation_runs (
    validation_id     VARCHAR PRIMARY KEY,
    run_at            TIMESTAMPTZ NOT NULL,
    suite             VARCHAR NOT NULL,        -- raw_profiles | raw_posts | features
    crawl_id          BIGINT,                  -- the crawl validated (raw suites)
    feature_date      DATE,                    -- the date validated (features suite)
    rows_validated    INTEGER NOT NULL,
    expectations      INTEGER NOT NULL,
    passed            INTEGER NOT NULL,
    failed            INTEGER NOT NULL,
    rows_quarantined  INTEGER NOT NULL,
    table_level_ok    BOOLEAN NOT NULL,        -- false: the run stopped before features
    data_docs         VARCHAR                  -- the Data Docs page of this validation
);

-- Grain: one row per expectation per validation. Key: (validation_id, expectation).
CREATE TABLE quality.expectation_results (
    validation_id     VARCHAR NOT NULL,
    expectation       VARCHAR NOT NULL,        -- type and column, e.g. expect_column_values_to_not_be_null(post_id)
    level             VARCHAR NOT NULL,        -- row | table
    success           BOOLEAN NOT NULL,
    unexpected_count  BIGINT,
    observed_value    VARCHAR,
    PRIMARY KEY (validation_id, expectation)
);

-- Grain: one row per quarantined row per expectation it failed.
-- Key: (validation_id, table_name, row_key, expectation).
CREATE TABLE quality.quarantined_rows (
    validation_id  VARCHAR NOT NULL,
    table_name     VARCHAR NOT NULL,           -- raw.profiles | raw.posts | features.influencer_features
    crawl_id       BIGINT,
    username       VARCHAR,
    post_id        VARCHAR,
    feature_date   DATE,
    row_key        VARCHAR NOT NULL,           -- the row's key, readable
    expectation    VARCHAR NOT NULL,
    PRIMARY KEY (validation_id, table_name, row_key, expectation)
);

-- Staging now leaves quarantined raw rows out.
CREATE OR REPLACE VIEW staging.account_crawls AS
SELECT
    p.crawl_id,
    p.username,
    r.source,
    r.as_of_date,
    p.fetched_at,
    p.followers,
    p.follows,
    p.media_count,
    coalesce(p.is_private, false)  AS is_private,
    coalesce(p.is_verified, false) AS is_verified
FROM raw.profiles AS p
JOIN raw.crawl_runs AS r USING (crawl_id)
JOIN raw.account_outcomes AS o USING (crawl_id, username)
WHERE r.status IN ('succeeded', 'interrupted')
  AND o.status IN ('ok', 'private')
  AND NOT EXISTS (
      SELECT 1 FROM quality.quarantined_rows AS q
      WHERE q.table_name = 'raw.profiles' AND q.crawl_id = p.crawl_id AND q.username = p.username
  );

CREATE OR REPLACE VIEW staging.media_means AS
WITH readable_posts AS (
    SELECT * FROM raw.posts AS p
    WHERE NOT EXISTS (
        SELECT 1 FROM quality.quarantined_rows AS q
        WHERE q.table_name = 'raw.posts' AND q.crawl_id = p.crawl_id AND q.post_id = p.post_id
    )
),
per_kind AS (
    SELECT
        crawl_id,
        username,
        count(*)                                         AS posts_observed,
        count(*) FILTER (kind = 'image')                 AS image_posts,
        count(likes) FILTER (kind = 'image')             AS image_posts_with_likes,
        avg(likes)    FILTER (kind = 'image')            AS image_love,
        avg(comments) FILTER (kind = 'image')            AS image_comment,
        avg(likes)    FILTER (kind = 'video')            AS video_love,
        avg(comments) FILTER (kind = 'video')            AS video_comment,
        avg(likes)    FILTER (kind = 'igtv')             AS igtv_love,
        avg(comments) FILTER (kind = 'igtv')             AS igtv_comment
    FROM readable_posts
    GROUP BY crawl_id, username
)
SELECT
    crawl_id, username, posts_observed, image_posts, image_posts_with_likes,
    image_love, image_comment, video_love, video_comment, igtv_love, igtv_comment,
    false AS from_import
FROM per_kind
UNION ALL
SELECT
    crawl_id, username, NULL, NULL, NULL,
    image_love, image_comment, video_love, video_comment, igtv_love, igtv_comment,
    true
FROM raw.imported_media_means;
