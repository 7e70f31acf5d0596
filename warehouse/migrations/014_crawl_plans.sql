-- The nightly plan (warehouse/plans.py): which accounts a night crawls, within the budget of
-- what its credentials may call in its crawl window, and why each is where it is.

-- Grain: one row per plan, one per crawl it opened. Key: crawl_key.
-- crawl_key is the crawl's name in the landing area (raw.crawl_runs.landing_key once loaded).
CREATE TABLE watchlist.plans (
    crawl_key               VARCHAR PRIMARY KEY,
    planned_at              TIMESTAMPTZ NOT NULL,
    as_of_date              DATE NOT NULL,
    source                  VARCHAR NOT NULL,    -- web | graph
    watched                 INTEGER NOT NULL,    -- accounts the plan chose from (the watchlist, or those named)
    planned                 INTEGER NOT NULL,    -- accounts in the plan
    shards                  INTEGER NOT NULL,
    credentials             INTEGER NOT NULL,    -- Graph tokens, or web IPs / sessions, the shards crawl with
    calls_per_window        INTEGER NOT NULL,    -- per credential (quotas.graph_calls / web_calls)
    window_seconds          DOUBLE NOT NULL,
    target_usage            DOUBLE NOT NULL,     -- the share of each limit a crawl uses
    crawl_window_hours      DOUBLE NOT NULL,
    calls_per_account       DOUBLE NOT NULL,     -- measured on the source's latest crawl, else 1
    budget_calls            INTEGER NOT NULL,    -- what the credentials may call tonight
    budget_accounts         INTEGER NOT NULL,    -- budget_calls / calls_per_account
    full_refresh_nights     INTEGER,             -- nights to observe every watched account once (NULL: never)
    credentials_for_nightly INTEGER NOT NULL     -- credentials needed to observe every one every night
);

-- Grain: one row per planned account per plan. Key: (crawl_key, username).
-- No PRIMARY KEY index (it grows with the nights, as raw's tables: migration 010): the plan
-- writes each account once, and the key is tested.
CREATE TABLE watchlist.planned_accounts (
    crawl_key         VARCHAR NOT NULL,
    username          VARCHAR NOT NULL,
    priority          INTEGER NOT NULL,   -- 1 = crawled first
    reason            VARCHAR NOT NULL,   -- deferred | never_observed | oldest_observation
    last_observed_on  DATE,               -- its latest observation before tonight (NULL: none)
    last_tried_on     DATE,               -- its latest crawl attempt in the look-back (NULL: none)
    attention         DOUBLE NOT NULL,    -- 0..1: near a persona boundary, or ER moving (ties of a day)
    shard             VARCHAR NOT NULL
);
