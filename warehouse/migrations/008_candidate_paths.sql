-- Each candidate records how it was fitted (exact, or which scalable approximation) and
-- how its mean silhouette was measured (on how many influencers, with what standard error).
ALTER TABLE clusters.candidates ADD COLUMN method VARCHAR NOT NULL DEFAULT 'exact';
ALTER TABLE clusters.candidates ADD COLUMN silhouette_sample_size INTEGER;
ALTER TABLE clusters.candidates ADD COLUMN silhouette_se DOUBLE;  -- NULL: every influencer scored
