-- Personas are told apart by follower tier where two clusters share their levels, so each
-- cluster records its tier (of its median follower count: nano, micro, mid, macro, mega).
ALTER TABLE clusters.profiles ADD COLUMN follower_tier VARCHAR;

-- Units, where an analyst reading the catalogue (duckdb_columns()) will see them.
COMMENT ON COLUMN features.influencer_features.er IS 'ER, percent: (image likes + image comments) / followers * 100';
COMMENT ON COLUMN features.influencer_features.active_rate IS 'active_rate, percent: image comments / (image likes + 1) * 100';
COMMENT ON COLUMN clusters.assignments.er IS 'ER of the influencer, percent';
COMMENT ON COLUMN clusters.assignments.active_rate IS 'active_rate of the influencer, percent';
COMMENT ON COLUMN clusters.profiles.mean_er IS 'mean ER of the cluster, percent';
COMMENT ON COLUMN clusters.profiles.median_er IS 'median ER of the cluster, percent';
COMMENT ON COLUMN clusters.profiles.mean_active_rate IS 'mean active_rate of the cluster, percent';
COMMENT ON COLUMN clusters.profiles.median_active_rate IS 'median active_rate of the cluster, percent';
COMMENT ON COLUMN clusters.profiles.follower_tier IS 'follower tier of the median follower count: nano < 10k, micro < 100k, mid < 500k, macro < 1M, mega';
