-- Layer `staging`: views that put raw rows of every source into one shape, leaving out
-- rows that validation quarantined. No storage.
CREATE SCHEMA staging;

-- Grain: one row per account per crawl, for accounts whose profile was read (outcome ok
-- or private) in a crawl that did not fail. Key: (crawl_id, username).
CREATE VIEW staging.account_crawls AS
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

-- Grain: one row per account per crawl: mean likes and comments per media kind.
-- Key: (crawl_id, username). Means ignore hidden (NULL) like counts; a kind with no
-- readable post has NULL means and 0 posts.
CREATE VIEW staging.media_means AS
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
FROM raw.imported_media_means;
