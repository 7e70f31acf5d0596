-- Layer `quality`: what validation found. Quarantined raw rows do not reach staging,
-- hence not features.
CREATE SCHEMA quality;

-- Grain: one row per validation of one table's rows (a suite run). Key: validation_id.
CREATE TABLE quality.validation_runs (
    validation_id     VARCHAR PRIMARY KEY,
    run_at            TIMESTAMPTZ NOT NULL,
    suite             VARCHAR NOT NULL,        -- raw_profiles | raw_posts | features
    crawl_id          BIGINT,                  -- the crawl validated (raw suites)
    feature_date      DATE,                    -- the date validated (features suite)
    rows_validated    INTEGER NOT NULL,
    expectations      INTEGER NOT NULL,
    passed            INTEGER NOT NULL,
    failed            INTEGER NOT NULL,
    rows_quarantined  INTEGER NOT NULL,
    table_level_ok    BOOLEAN NOT NULL,        -- false: the run stopped before features
    data_docs         VARCHAR                  -- the Data Docs page of this validation
);

-- Grain: one row per expectation per validation. Key: (validation_id, expectation).
CREATE TABLE quality.expectation_results (
    validation_id     VARCHAR NOT NULL,
    expectation       VARCHAR NOT NULL,        -- type and column, e.g. expect_column_values_to_not_be_null(post_id)
    level             VARCHAR NOT NULL,        -- row | table
    success           BOOLEAN NOT NULL,
    unexpected_count  BIGINT,
    observed_value    VARCHAR,
    PRIMARY KEY (validation_id, expectation)
);

-- Grain: one row per quarantined row per expectation it failed.
-- Key: (validation_id, table_name, row_key, expectation).
CREATE TABLE quality.quarantined_rows (
    validation_id  VARCHAR NOT NULL,
    table_name     VARCHAR NOT NULL,           -- raw.profiles | raw.posts | features.influencer_features
    crawl_id       BIGINT,
    username       VARCHAR,
    post_id        VARCHAR,
    feature_date   DATE,
    row_key        VARCHAR NOT NULL,           -- the row's key, readable
    expectation    VARCHAR NOT NULL,
    PRIMARY KEY (validation_id, table_name, row_key, expectation)
);
