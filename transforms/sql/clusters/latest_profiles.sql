CREATE OR REPLACE VIEW clusters.latest_profiles AS
SELECT * FROM clusters.profiles
WHERE version = (SELECT max(version) FROM clusters.snapshots);
