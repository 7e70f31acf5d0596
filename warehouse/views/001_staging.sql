-- Layer `staging`: views that put raw rows of every source into one shape. Only runs
-- that finished and passed validation are read, and rows that validation quarantined
-- are left out. No storage.

-- Grain: one row per crawl or import that finished (succeeded, or interrupted keeping
-- what it stored) and that no validation has seen yet. Key: crawl_id.
CREATE OR REPLACE VIEW staging.unvalidated_crawls AS
SELECT r.crawl_id, r.source, r.as_of_date, r.finished_at
FROM raw.crawl_runs AS r
WHERE r.status IN ('succeeded', 'interrupted')
  AND NOT EXISTS (SELECT 1 FROM quality.validation_runs AS v WHERE v.crawl_id = r.crawl_id);

-- Grain: one row per crawl or import whose rows may be read: it finished and every
-- validation of it passed its table-level checks (schema, volume). Key: crawl_id.
CREATE OR REPLACE VIEW staging.readable_crawls AS
SELECT r.crawl_id, r.source, r.as_of_date, r.finished_at
FROM raw.crawl_runs AS r
JOIN (
    SELECT crawl_id FROM quality.validation_runs
    WHERE crawl_id IS NOT NULL
    GROUP BY crawl_id
    HAVING bool_and(table_level_ok)
) AS validated USING (crawl_id)
WHERE r.status IN ('succeeded', 'interrupted');

-- Grain: one row per account per readable crawl, for accounts whose profile was read
-- (outcome ok or private). Key: (crawl_id, username).
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
JOIN staging.readable_crawls AS r USING (crawl_id)
JOIN raw.account_outcomes AS o USING (crawl_id, username)
WHERE o.status IN ('ok', 'private')
  AND NOT EXISTS (
      SELECT 1 FROM quality.quarantined_rows AS q
      WHERE q.table_name = 'raw.profiles' AND q.crawl_id = p.crawl_id AND q.username = p.username
  );

-- Grain: one row per account per crawl: mean likes and comments per media kind.
-- Key: (crawl_id, username). Means ignore hidden (NULL) like counts; a kind with no
-- readable post has NULL means and 0 posts.
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
-- Imported means: how many posts stood behind them is unknown.
SELECT
    crawl_id, username, NULL, NULL, NULL,
    image_love, image_comment, video_love, video_comment, igtv_love, igtv_comment,
    true
FROM raw.imported_media_means AS m
WHERE NOT EXISTS (
    SELECT 1 FROM quality.quarantined_rows AS q
    WHERE q.table_name = 'raw.imported_media_means' AND q.crawl_id = m.crawl_id AND q.username = m.username
);
