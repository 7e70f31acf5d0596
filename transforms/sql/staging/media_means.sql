-- Means ignore hidden (NULL) like counts; a kind with no readable post has NULL means and
-- 0 posts. Posts validation quarantined are left out.
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
