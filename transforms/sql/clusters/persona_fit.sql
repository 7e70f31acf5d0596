-- Each influencer ranked among its persona's members by active_rate and by ER (cume_dist:
-- the share of members at or below it), weighted 3 : 2 as the study's ranking weighs them
-- (models/personas.py: ACTIVE_RATE_WEIGHT, ER_WEIGHT). Ranks, not raw values, so that one
-- account far beyond the rest does not flatten every other score, and so that scores
-- compare across personas.
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
