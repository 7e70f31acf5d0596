-- Every number has an age: a feature row records when the observation it was read from was
-- made, and an observation older than max_observation_age_days is not clustered (`stale`).
ALTER TABLE features.influencer_features ADD COLUMN observed_on DATE;          -- the day its crawl describes
ALTER TABLE features.influencer_features ADD COLUMN observed_at TIMESTAMPTZ;   -- when its profile was fetched
UPDATE features.influencer_features AS f SET observed_on = r.as_of_date
FROM raw.crawl_runs AS r WHERE r.crawl_id = f.crawl_id;
UPDATE features.influencer_features AS f SET observed_at = p.fetched_at
FROM raw.profiles AS p WHERE p.crawl_id = f.crawl_id AND p.username = f.username;
COMMENT ON COLUMN features.influencer_features.observed_on IS 'the day the observation read describes (its crawl''s as-of date)';
COMMENT ON COLUMN features.influencer_features.observed_at IS 'when the observation read was fetched';

-- Accounts a crawl did not reach because its quota ran out: not failures (accounts_failed).
ALTER TABLE raw.crawl_runs ADD COLUMN accounts_deferred INTEGER;
