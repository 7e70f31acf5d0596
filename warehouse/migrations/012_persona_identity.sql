-- Persona identity over time: each cluster of a snapshot carries a persona_id that stays the
-- same from snapshot to snapshot while it is the same group of influencers (see
-- warehouse/snapshots.py MATCH_PERSONAS), and every snapshot records what became of each
-- persona of the one before it.

-- Snapshots stored before this migration: each cluster gets an id of its own (they were
-- never matched; history starts here).
ALTER TABLE clusters.profiles ADD COLUMN persona_id INTEGER;
UPDATE clusters.profiles AS p SET persona_id = numbered.id
FROM (SELECT version, cluster, row_number() OVER (ORDER BY version, cluster) AS id FROM clusters.profiles) AS numbered
WHERE p.version = numbered.version AND p.cluster = numbered.cluster;

-- Grain: one row per persona per snapshot: present in it (continued from the previous
-- snapshot, or new), or vanished since the previous snapshot. Key: (version, persona_id).
-- Written in the same transaction as the snapshot; none for snapshots older than this table.
CREATE TABLE clusters.persona_events (
    version           INTEGER NOT NULL,
    persona_id        INTEGER NOT NULL,
    event             VARCHAR NOT NULL,      -- continued | new | vanished
    cluster           INTEGER,               -- its cluster in this snapshot (NULL if vanished)
    previous_version  INTEGER,               -- the snapshot it was matched against (NULL for the first)
    previous_cluster  INTEGER,               -- its cluster there (NULL if new)
    matched_by        VARCHAR,               -- members | centre (continued only)
    jaccard           DOUBLE,                -- members shared / members of either (continued only)
    centre_distance   DOUBLE,                -- between the (mean_er, mean_active_rate) centres, in points
    PRIMARY KEY (version, persona_id)
);
