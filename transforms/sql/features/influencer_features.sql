-- The rows of features.influencer_features for one feature date ($feature_date).
-- Each influencer is read from its latest readable crawl on or before the date, and says when
-- that observation was made; one older than $max_age_days days is not clusterable (`stale`).
WITH latest_crawl AS (
    SELECT *
    FROM staging.account_crawls
    WHERE as_of_date <= $feature_date
    QUALIFY row_number() OVER (
        PARTITION BY username ORDER BY as_of_date DESC, crawl_id DESC
    ) = 1
),
base AS (
    SELECT
        c.username,
        c.crawl_id,
        c.source,
        c.as_of_date         AS observed_on,
        c.fetched_at         AS observed_at,
        c.media_count        AS post,
        c.followers          AS follower,
        c.follows            AS follow,
        NOT c.is_private     AS open_account,
        c.is_verified        AS official_account,
        m.image_love,
        m.image_comment,
        m.video_love,
        m.video_comment,
        m.igtv_love,
        m.igtv_comment,
        coalesce(m.from_import, false) AS from_import,
        CASE WHEN coalesce(m.from_import, false) THEN NULL
             ELSE coalesce(m.posts_observed, 0) END AS posts_observed,
        m.image_posts,
        m.image_posts_with_likes
    FROM latest_crawl AS c
    LEFT JOIN staging.media_means AS m USING (crawl_id, username)
),
reasoned AS (
    SELECT
        *,
        -- The first reason that applies; NULL means clusterable.
        CASE
            WHEN $feature_date::DATE - observed_on > $max_age_days THEN 'stale'
            WHEN NOT open_account                         THEN 'private'
            WHEN follower IS NULL OR follower <= 0        THEN 'no_followers'
            WHEN NOT from_import AND posts_observed = 0   THEN 'no_readable_posts'
            WHEN NOT from_import AND image_posts = 0      THEN 'no_image_posts'
            WHEN NOT from_import AND image_posts_with_likes = 0 THEN 'likes_hidden'
            WHEN image_comment IS NULL                    THEN 'comments_hidden'
        END AS not_clusterable_reason
    FROM base
)
SELECT
    username,
    $feature_date::DATE AS feature_date,
    crawl_id,
    source,
    post,
    follower,
    follow,
    open_account,
    official_account,
    image_love,
    image_comment,
    video_love,
    video_comment,
    igtv_love,
    igtv_comment,
    CASE WHEN not_clusterable_reason IS NULL
         THEN (image_love + image_comment) / follower * 100 END      AS er,
    CASE WHEN not_clusterable_reason IS NULL
         THEN image_comment / (image_love + 1) * 100 END             AS active_rate,
    posts_observed,
    not_clusterable_reason IS NULL AS is_clusterable,
    not_clusterable_reason,
    now() AS computed_at,
    observed_on,
    observed_at
FROM reasoned;
