-- Units on the views analysts query first, as migration 011 put them on the tables: a view
-- keeps no comment of the table it reads, and loses its own when it is replaced, so this
-- file runs last, after every view is (re)created. No view is defined here.

COMMENT ON COLUMN clusters.latest_assignments.er IS 'ER of the influencer, percent';
COMMENT ON COLUMN clusters.latest_assignments.active_rate IS 'active_rate of the influencer, percent';
COMMENT ON COLUMN clusters.latest_profiles.mean_er IS 'mean ER of the cluster, percent';
COMMENT ON COLUMN clusters.latest_profiles.median_er IS 'median ER of the cluster, percent';
COMMENT ON COLUMN clusters.latest_profiles.mean_active_rate IS 'mean active_rate of the cluster, percent';
COMMENT ON COLUMN clusters.latest_profiles.median_active_rate IS 'median active_rate of the cluster, percent';
COMMENT ON COLUMN features.clusterable.er IS 'ER, percent: (image likes + image comments) / followers * 100';
COMMENT ON COLUMN features.clusterable.active_rate IS 'active_rate, percent: image comments / (image likes + 1) * 100';
COMMENT ON COLUMN features.influencer_history.er IS 'ER, percent: (image likes + image comments) / followers * 100';
COMMENT ON COLUMN features.influencer_history.active_rate IS 'active_rate, percent: image comments / (image likes + 1) * 100';
