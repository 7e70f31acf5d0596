-- Persona frames (models/frames.py): a snapshot either keeps the personas of the one before
-- (ids, names, levels, ranks, regions), moving only the influencers whose own numbers crossed
-- into another persona's region, or makes a new frame from its fit, and says which and why.

-- Grain: one row per persona frame. Key: frame_id, the version of the snapshot that made it.
-- Its space: a point's coordinates are ((ER, active_rate) - space_offset) / space_scale.
CREATE TABLE clusters.frames (
    frame_id      INTEGER PRIMARY KEY,
    scaling       VARCHAR NOT NULL,          -- none | standard | minmax (the clustering setting)
    space_offset  DOUBLE[] NOT NULL,
    space_scale   DOUBLE[] NOT NULL
);

-- Grain: one row per persona per frame. Key: (frame_id, persona_id); cluster is unique per frame.
-- A persona's region: the points nearer its centre than any other persona's of the frame.
CREATE TABLE clusters.frame_personas (
    frame_id            INTEGER NOT NULL,
    persona_id          INTEGER NOT NULL,
    cluster             INTEGER NOT NULL,    -- its cluster number in every snapshot of the frame
    persona             VARCHAR NOT NULL,
    er_level            VARCHAR NOT NULL,
    active_rate_level   VARCHAR NOT NULL,
    follower_tier       VARCHAR,
    rank                INTEGER NOT NULL,
    centre_er           DOUBLE NOT NULL,     -- mean ER of its members when the frame was made, percent
    centre_active_rate  DOUBLE NOT NULL,     -- mean active_rate of its members then, percent
    share               DOUBLE NOT NULL,     -- its share of the cohort then
    PRIMARY KEY (frame_id, persona_id)
);

-- Each snapshot names its frame and whether it made it; NULL for snapshots older than frames.
ALTER TABLE clusters.snapshots ADD COLUMN frame_id INTEGER;
ALTER TABLE clusters.snapshots ADD COLUMN frame_made BOOLEAN;
ALTER TABLE clusters.snapshots ADD COLUMN frame_why VARCHAR;
ALTER TABLE clusters.snapshots ADD COLUMN population_shift DOUBLE;
-- How each influencer got its persona: fit (the frame was made), kept, crossed (its numbers
-- crossed into the persona's region), placed (new to the snapshot: the persona of its region).
ALTER TABLE clusters.assignments ADD COLUMN assigned_by VARCHAR;
ALTER TABLE clusters.assignments ADD COLUMN distance_ratio DOUBLE;

COMMENT ON COLUMN clusters.frame_personas.centre_er IS 'mean ER of the persona''s members when the frame was made, percent';
COMMENT ON COLUMN clusters.frame_personas.centre_active_rate IS 'mean active_rate of the persona''s members when the frame was made, percent';
COMMENT ON COLUMN clusters.snapshots.population_shift IS 'population stability index of the personas'' shares against the standing frame''s';
COMMENT ON COLUMN clusters.assignments.distance_ratio IS 'crossed only: distance to the old persona''s centre over the distance to the new one''s';
