-- What the report and the exports read beside the snapshot itself: how well each influencer
-- fits its persona, and when its numbers were observed.

-- How well each influencer of a snapshot fits what its persona promises a marketer: the
-- buying intent of its followers (active_rate) and the trust in it (ER), each ranked among
-- the members of its persona (cume_dist: the share of the persona's members at or below it,
-- so its best member has 1 and a persona of one member too), weighted 3 : 2 as the study's
-- ranking weighs them (models/personas.py: ACTIVE_RATE_WEIGHT, ER_WEIGHT). 0-100, higher fits
-- better: 100 is the persona's highest active_rate and highest ER. Ranks, not raw values, so
-- that one account far beyond the rest does not flatten every other score, and so that
-- scores compare across personas.
-- fit_rank: 1 = the best fit of its persona; ties go to the higher active_rate, then ER, then
-- username (a stable order from one call to the next).
-- Grain: one row per influencer of snapshot `snapshot_version`. Key: username.
-- Call: FROM clusters.persona_fit(3).
CREATE OR REPLACE MACRO clusters.persona_fit(snapshot_version) AS TABLE
WITH ranked AS (
    SELECT
        version,
        username,
        cluster,
        persona,
        er,
        active_rate,
        100 * (3 * cume_dist() OVER (PARTITION BY cluster ORDER BY active_rate)
               + 2 * cume_dist() OVER (PARTITION BY cluster ORDER BY er)) / 5 AS fit_score
    FROM clusters.assignments
    WHERE version = snapshot_version
)
SELECT
    *,
    row_number() OVER (
        PARTITION BY cluster ORDER BY fit_score DESC, active_rate DESC, er DESC, username
    ) AS fit_rank
FROM ranked;

-- When each influencer's features of a date were observed: the day the crawl (or import)
-- they were read from describes (a feature date re-reads an older crawl when the influencer
-- was not crawled since; features.influencer_features.observed_on).
-- Grain: one row per influencer with features on feature date `day`. Key: username.
-- Call: FROM features.observations(DATE '2026-06-01').
CREATE OR REPLACE MACRO features.observations(day) AS TABLE
SELECT username, observed_on
FROM features.influencer_features
WHERE feature_date = CAST(day AS DATE);
