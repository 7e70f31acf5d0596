CREATE OR REPLACE MACRO features.observations(day) AS TABLE
SELECT username, observed_on
FROM features.influencer_features
WHERE feature_date = CAST(day AS DATE);
