-- The accounts crawled every night unless a crawl names its own.
CREATE SCHEMA watchlist;

-- Grain: one row per watched account. Key: username.
CREATE TABLE watchlist.accounts (
    username    VARCHAR PRIMARY KEY,
    added_at    TIMESTAMPTZ NOT NULL,
    added_from  VARCHAR NOT NULL,        -- manual | file:<name> | tag:<hashtag>
    active      BOOLEAN NOT NULL DEFAULT true
);
