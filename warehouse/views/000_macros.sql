-- Macros the views and analysts share. Follower tiers as marketers use them (upper bounds
-- exclusive): nano < 10k, micro < 100k, mid < 500k, macro < 1M, mega from 1M. The same
-- bounds as models.personas.FOLLOWER_TIERS (tested).
CREATE OR REPLACE MACRO main.follower_tier(followers) AS
    CASE
        WHEN followers IS NULL THEN NULL
        WHEN followers < 10000 THEN 'nano'
        WHEN followers < 100000 THEN 'micro'
        WHEN followers < 500000 THEN 'mid'
        WHEN followers < 1000000 THEN 'macro'
        ELSE 'mega'
    END;
