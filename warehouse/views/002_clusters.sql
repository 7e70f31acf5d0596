-- Views on the `clusters` layer: the latest snapshot, and who changed persona (and why).

-- Grain: one row per influencer, latest snapshot only. Key: username.
CREATE OR REPLACE VIEW clusters.latest_assignments AS
SELECT * FROM clusters.assignments
WHERE version = (SELECT max(version) FROM clusters.snapshots);

-- Grain: one row per cluster, latest snapshot only. Key: cluster.
CREATE OR REPLACE VIEW clusters.latest_profiles AS
SELECT * FROM clusters.profiles
WHERE version = (SELECT max(version) FROM clusters.snapshots);

-- Who changed persona between any two snapshots, and why: each one's ER and active_rate (%)
-- and its cluster's levels in both, persona names and persona ids in both. change: new (not
-- clustered in from_version), dropped (not in to_version), changed (another persona),
-- renamed (the same persona, by id, under another name).
-- Grain: one row per influencer whose persona (name or id) differs between from_version and
-- to_version. Key: username. Call: FROM clusters.persona_changes(3, 5).
CREATE OR REPLACE MACRO clusters.persona_changes(from_version, to_version) AS TABLE
WITH prev AS (
    SELECT a.username, a.persona, a.er, a.active_rate, p.persona_id, p.er_level, p.active_rate_level
    FROM clusters.assignments AS a
    LEFT JOIN clusters.profiles AS p ON p.version = a.version AND p.cluster = a.cluster
    WHERE a.version = from_version
),
cur AS (
    SELECT a.username, a.persona, a.er, a.active_rate, p.persona_id, p.er_level, p.active_rate_level
    FROM clusters.assignments AS a
    LEFT JOIN clusters.profiles AS p ON p.version = a.version AND p.cluster = a.cluster
    WHERE a.version = to_version
)
SELECT
    coalesce(cur.username, prev.username)  AS username,
    from_version                            AS previous_version,
    prev.persona                            AS previous_persona,
    to_version                              AS current_version,
    cur.persona                             AS current_persona,
    CASE WHEN prev.username IS NULL THEN 'new'
         WHEN cur.username IS NULL THEN 'dropped'
         WHEN cur.persona_id = prev.persona_id THEN 'renamed'
         ELSE 'changed' END                  AS change,
    prev.persona_id                         AS previous_persona_id,
    cur.persona_id                          AS current_persona_id,
    prev.er                                 AS previous_er,
    cur.er                                  AS current_er,
    prev.active_rate                        AS previous_active_rate,
    cur.active_rate                         AS current_active_rate,
    prev.er_level                           AS previous_er_level,
    cur.er_level                            AS current_er_level,
    prev.active_rate_level                  AS previous_active_rate_level,
    cur.active_rate_level                   AS current_active_rate_level,
    CASE WHEN prev.username IS NULL THEN format('not clustered in snapshot {}', from_version)
         WHEN cur.username IS NULL THEN format('not clustered in snapshot {}', to_version)
         ELSE format(
             'ER {:.2f} -> {:.2f} ({} -> {}), active_rate {:.2f} -> {:.2f} ({} -> {})',
             prev.er, cur.er, coalesce(prev.er_level, '?'), coalesce(cur.er_level, '?'),
             prev.active_rate, cur.active_rate,
             coalesce(prev.active_rate_level, '?'), coalesce(cur.active_rate_level, '?'))
    END                                     AS why
FROM cur
FULL OUTER JOIN prev ON cur.username = prev.username
WHERE cur.persona IS DISTINCT FROM prev.persona OR cur.persona_id IS DISTINCT FROM prev.persona_id;

-- Grain: one row per influencer whose persona differs between the two latest snapshots
-- (including influencers present in only one of them). Key: username.
-- The columns of clusters.persona_changes.
CREATE OR REPLACE VIEW clusters.changes AS
SELECT * FROM clusters.persona_changes(
    (SELECT max(version) FROM clusters.snapshots
     WHERE version < (SELECT max(version) FROM clusters.snapshots)),
    (SELECT max(version) FROM clusters.snapshots)
)
WHERE previous_version IS NOT NULL;
