-- The influencers a recluster takes, in the order it takes them.
CREATE OR REPLACE VIEW features.clusterable AS
SELECT
    feature_date,
    username,
    er,
    active_rate,
    follower,
    row_number() OVER (PARTITION BY feature_date ORDER BY username) - 1 AS row_index
FROM features.influencer_features
WHERE is_clusterable;
