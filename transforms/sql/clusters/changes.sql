CREATE OR REPLACE VIEW clusters.changes AS
SELECT * FROM clusters.persona_changes(
    (SELECT max(version) FROM clusters.snapshots
     WHERE version < (SELECT max(version) FROM clusters.snapshots)),
    (SELECT max(version) FROM clusters.snapshots)
)
WHERE previous_version IS NOT NULL;
