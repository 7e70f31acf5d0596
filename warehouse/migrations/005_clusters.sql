-- Layer `clusters`: versioned, immutable clustering snapshots. A snapshot and all its
-- rows are written in one transaction and never updated.
CREATE SCHEMA clusters;

-- Grain: one row per snapshot. Key: version.
CREATE TABLE clusters.snapshots (
    version             INTEGER PRIMARY KEY,
    created_at          TIMESTAMPTZ NOT NULL,
    feature_date        DATE NOT NULL,
    n_influencers       INTEGER NOT NULL,
    data_fingerprint    VARCHAR NOT NULL,    -- sha256 of the clustered (username, ER, active_rate)
    code_version        VARCHAR NOT NULL,
    parameters          JSON NOT NULL,       -- the clustering settings used
    published_candidate VARCHAR NOT NULL,
    n_clusters          INTEGER NOT NULL
);

-- Grain: one row per candidate (algorithm x K or threshold) tried per snapshot.
-- Key: (version, candidate).
CREATE TABLE clusters.candidates (
    version       INTEGER NOT NULL,
    candidate     VARCHAR NOT NULL,          -- e.g. kmeans-k4, hierarchical-complete-t20
    algorithm     VARCHAR NOT NULL,          -- kmeans | kmedoids | hierarchical
    k             INTEGER,                   -- requested cluster count, if cut by K
    threshold     DOUBLE,                    -- distance threshold, if cut by distance
    n_clusters    INTEGER NOT NULL,
    silhouette    DOUBLE,                    -- NULL when undefined (one cluster)
    sse           DOUBLE NOT NULL,           -- within-cluster sum of squares (inertia)
    sizes         INTEGER[] NOT NULL,        -- cluster sizes, largest first
    is_published  BOOLEAN NOT NULL,
    PRIMARY KEY (version, candidate)
);

-- Grain: one row per K of the K-means elbow per snapshot. Key: (version, k).
CREATE TABLE clusters.kmeans_elbow (
    version INTEGER NOT NULL,
    k       INTEGER NOT NULL,
    sse     DOUBLE NOT NULL,
    PRIMARY KEY (version, k)
);

-- Grain: one row per influencer per snapshot (published candidate). Key: (version, username).
CREATE TABLE clusters.assignments (
    version      INTEGER NOT NULL,
    username     VARCHAR NOT NULL,
    cluster      INTEGER NOT NULL,
    persona      VARCHAR NOT NULL,
    er           DOUBLE NOT NULL,
    active_rate  DOUBLE NOT NULL,
    PRIMARY KEY (version, username)
);

-- Grain: one row per cluster per snapshot (published candidate). Key: (version, cluster).
-- Clusters are numbered by size, largest first; rank orders personas, 1 = best.
CREATE TABLE clusters.profiles (
    version             INTEGER NOT NULL,
    cluster             INTEGER NOT NULL,
    size                INTEGER NOT NULL,
    mean_er             DOUBLE NOT NULL,
    median_er           DOUBLE NOT NULL,
    mean_active_rate    DOUBLE NOT NULL,
    median_active_rate  DOUBLE NOT NULL,
    median_follower     DOUBLE,
    er_level            VARCHAR NOT NULL,    -- low | middle | high, relative to the cohort
    active_rate_level   VARCHAR NOT NULL,
    persona             VARCHAR NOT NULL,
    rank                INTEGER NOT NULL,
    PRIMARY KEY (version, cluster)
);

-- Grain: one row per influencer, latest snapshot only. Key: username.
CREATE VIEW clusters.latest_assignments AS
SELECT * FROM clusters.assignments
WHERE version = (SELECT max(version) FROM clusters.snapshots);

-- Grain: one row per cluster, latest snapshot only. Key: cluster.
CREATE VIEW clusters.latest_profiles AS
SELECT * FROM clusters.profiles
WHERE version = (SELECT max(version) FROM clusters.snapshots);

-- Grain: one row per influencer whose persona differs between the two latest snapshots
-- (including influencers present in only one of them). Key: username.
CREATE VIEW clusters.changes AS
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
