-- change: moved when both snapshots are on one persona frame (models/frames.py), reframed
-- when to_version's personas were redrawn, renamed for the same persona id under another
-- name, changed when either snapshot is older than persona frames; new / dropped.
CREATE OR REPLACE MACRO clusters.persona_changes(from_version, to_version) AS TABLE
WITH placed AS (  -- each influencer of the two snapshots, with its persona's id and levels
    SELECT a.version, a.username, a.persona, a.er, a.active_rate, p.persona_id, p.er_level,
           p.active_rate_level, p.follower_tier
    FROM clusters.assignments AS a
    LEFT JOIN clusters.profiles AS p ON p.version = a.version AND p.cluster = a.cluster
    WHERE a.version IN (from_version, to_version)
),
prev AS (FROM placed WHERE version = from_version),
cur AS (FROM placed WHERE version = to_version),
frames AS (
    SELECT (SELECT frame_id FROM clusters.snapshots WHERE version = from_version) AS from_frame,
           t.frame_id AS to_frame, t.frame_why, f.space_scale
    FROM clusters.snapshots AS t LEFT JOIN clusters.frames AS f USING (frame_id)
    WHERE t.version = to_version
),
centres AS (
    SELECT persona_id, centre_er, centre_active_rate FROM clusters.frame_personas
    WHERE frame_id = (SELECT to_frame FROM frames)
),
compared AS (
    SELECT
        coalesce(cur.username, prev.username)  AS username,
        from_version                            AS previous_version,
        prev.persona                            AS previous_persona,
        to_version                              AS current_version,
        cur.persona                             AS current_persona,
        CASE WHEN prev.username IS NULL THEN 'new'
             WHEN cur.username IS NULL THEN 'dropped'
             WHEN cur.persona_id = prev.persona_id THEN 'renamed'
             WHEN f.from_frame IS NULL OR f.to_frame IS NULL THEN 'changed'
             WHEN f.from_frame = f.to_frame THEN 'moved'
             ELSE 'reframed' END                 AS change,
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
        -- How many times as far from the old persona's centre as from the new one's the
        -- influencer now is, in the frame's space (moves only).
        sqrt(((cur.er - old.centre_er) / f.space_scale[1]) ^ 2
             + ((cur.active_rate - old.centre_active_rate) / f.space_scale[2]) ^ 2)
        / nullif(sqrt(((cur.er - new.centre_er) / f.space_scale[1]) ^ 2
                      + ((cur.active_rate - new.centre_active_rate) / f.space_scale[2]) ^ 2), 0)
                                                AS distance_ratio,
        concat_ws(', ',
            CASE WHEN prev.er_level IS DISTINCT FROM cur.er_level
                 THEN format('ER level {} -> {}', prev.er_level, cur.er_level) END,
            CASE WHEN prev.active_rate_level IS DISTINCT FROM cur.active_rate_level
                 THEN format('active_rate level {} -> {}', prev.active_rate_level, cur.active_rate_level) END,
            CASE WHEN prev.er_level IS NOT DISTINCT FROM cur.er_level
                      AND prev.active_rate_level IS NOT DISTINCT FROM cur.active_rate_level
                 THEN format('same levels, follower tier {} -> {}', coalesce(prev.follower_tier, '?'),
                             coalesce(cur.follower_tier, '?')) END)
                                                AS boundary,
        format('ER {:.2f} -> {:.2f} ({} -> {}), active_rate {:.2f} -> {:.2f} ({} -> {})',
               prev.er, cur.er, coalesce(prev.er_level, '?'), coalesce(cur.er_level, '?'),
               prev.active_rate, cur.active_rate,
               coalesce(prev.active_rate_level, '?'), coalesce(cur.active_rate_level, '?'))
                                                AS numbers,
        f.frame_why
    FROM cur
    FULL OUTER JOIN prev ON cur.username = prev.username
    CROSS JOIN frames AS f
    LEFT JOIN centres AS old ON old.persona_id = prev.persona_id
    LEFT JOIN centres AS new ON new.persona_id = cur.persona_id
    WHERE cur.persona IS DISTINCT FROM prev.persona OR cur.persona_id IS DISTINCT FROM prev.persona_id
)
SELECT * EXCLUDE (boundary, numbers, frame_why, distance_ratio),
    CASE change
        WHEN 'new' THEN format('not clustered in snapshot {}', previous_version)
        WHEN 'dropped' THEN format('not clustered in snapshot {}', current_version)
        WHEN 'moved' THEN format(
            'its numbers crossed from {}''s region into {}''s ({}): {}; now {:.1f} times as far from the old centre as from the new',
            previous_persona, current_persona, boundary, numbers, distance_ratio)
        WHEN 'reframed' THEN format('personas redrawn in snapshot {} ({}): {}', current_version, frame_why, numbers)
        WHEN 'renamed' THEN format('the same persona (id {}), renamed when its frame was remade in snapshot {}',
                                   current_persona_id, current_version)
        ELSE numbers
    END                                         AS why,
    boundary,
    distance_ratio
FROM compared;
