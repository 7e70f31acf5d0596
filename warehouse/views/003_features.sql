-- The influencers a recluster takes, in the order it takes them.

-- Grain: one row per clusterable influencer per feature date, numbered from 0 in username
-- order within the date (row_index): the clusterers get them in this order, and their
-- assignments are joined back by it. Key: (feature_date, username).
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
