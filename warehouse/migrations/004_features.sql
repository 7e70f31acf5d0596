-- Layer `features`: engagement features per influencer, as of a feature date.
CREATE SCHEMA features;

-- Grain: one row per influencer per feature date. Key: (username, feature_date).
-- Read from each influencer's latest readable crawl with as_of_date <= feature_date.
-- The 12 base columns keep the study's names; ER and active_rate are percentages:
--   er          = (image_love + image_comment) / follower * 100
--   active_rate = image_comment / (image_love + 1) * 100
-- Influencers that cannot be clustered stay here with is_clusterable = false and why.
CREATE TABLE features.influencer_features (
    username              VARCHAR NOT NULL,
    feature_date          DATE NOT NULL,
    crawl_id              BIGINT NOT NULL,   -- the crawl the row was derived from
    source                VARCHAR NOT NULL,
    post                  BIGINT,            -- posts on the profile
    follower              BIGINT,
    follow                BIGINT,
    open_account          BOOLEAN NOT NULL,
    official_account      BOOLEAN NOT NULL,
    image_love            DOUBLE,
    image_comment         DOUBLE,
    video_love            DOUBLE,
    video_comment         DOUBLE,
    igtv_love             DOUBLE,
    igtv_comment          DOUBLE,
    er                    DOUBLE,
    active_rate           DOUBLE,
    posts_observed        INTEGER,           -- NULL for imported means
    is_clusterable        BOOLEAN NOT NULL,
    not_clusterable_reason VARCHAR,
    computed_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (username, feature_date),
    CHECK (is_clusterable = (not_clusterable_reason IS NULL))
);
