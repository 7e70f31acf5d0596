CREATE OR REPLACE VIEW clusters.latest_assignments AS
SELECT * FROM clusters.assignments
WHERE version = (SELECT max(version) FROM clusters.snapshots);
