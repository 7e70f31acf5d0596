-- Views on the `clusters` layer: the latest snapshot, and who changed persona.

-- Grain: one row per influencer, latest snapshot only. Key: username.
CREATE OR REPLACE VIEW clusters.latest_assignments AS
SELECT * FROM clusters.assignments
WHERE version = (SELECT max(version) FROM clusters.snapshots);

-- Grain: one row per cluster, latest snapshot only. Key: cluster.
CREATE OR REPLACE VIEW clusters.latest_profiles AS
SELECT * FROM clusters.profiles
WHERE version = (SELECT max(version) FROM clusters.snapshots);

-- Grain: one row per influencer whose persona differs between the two latest snapshots
-- (including influencers present in only one of them). Key: username.
CREATE OR REPLACE VIEW clusters.changes AS
WITH latest_two AS (
    SELECT
        max(version)                              AS current_version,
        max(version) FILTER (version < (SELECT max(version) FROM clusters.snapshots))
                                                  AS previous_version
    FROM clusters.snapshots
),
cur AS (
    SELECT a.username, a.persona FROM clusters.assignments a, latest_two l
    WHERE a.version = l.current_version
),
prev AS (
    SELECT a.username, a.persona FROM clusters.assignments a, latest_two l
    WHERE a.version = l.previous_version
)
SELECT
    coalesce(cur.username, prev.username)  AS username,
    l.previous_version,
    prev.persona                            AS previous_persona,
    l.current_version,
    cur.persona                             AS current_persona,
    CASE WHEN prev.username IS NULL THEN 'new'
         WHEN cur.username IS NULL THEN 'dropped'
         ELSE 'changed' END                  AS change
FROM cur
FULL OUTER JOIN prev ON cur.username = prev.username
CROSS JOIN latest_two AS l
WHERE l.previous_version IS NOT NULL
  AND cur.persona IS DISTINCT FROM prev.persona;
