-- The influencers a recluster takes, in the order it takes them.

-- Grain: one row per clusterable influencer per feature date, numbered from 0 in username
-- order within the date (row_index): the clusterers get them in this order, and their
-- assignments are joined back by it. Key: (feature_date, username).
CREATE OR REPLACE VIEW features.clusterable AS
SELECT
    feature_date,
    username,
    er,
    active_rate,
    follower,
    row_number() OVER (PARTITION BY feature_date ORDER BY username) - 1 AS row_index
FROM features.influencer_features
WHERE is_clusterable;

-- An influencer's history: followers, engagement and persona per feature date, with
-- follower growth and a flag for sudden follower jumps (a first audience-quality signal:
-- bought followers arrive in bursts). Computed at query time with window functions over
-- each influencer's own rows (partitioned by username), so a filter on username reaches
-- the scan of the features; a date range is read through the macro below.
--
-- Rules (README, "An influencer's history"):
-- - observed_on: the day the crawl a feature row was read from describes (a feature date
--   can re-read an older crawl when the influencer was not crawled since).
-- - persona, snapshot_version: the influencer's persona in the latest snapshot built on
--   that feature date; NULL when no snapshot was built on it (or it was not clustered).
-- - follower_growth_7d (_28d): followers minus followers on the nearest earlier feature
--   date at or before d - 7 (d - 28), looked for no further back than d - 14 (d - 56): a
--   reading older than twice the span is no 7-day (28-day) growth. NULL without one; _pct
--   is the growth in percent of the earlier count; _since is the date compared against.
-- - daily_growth_pct: percent change of followers since the previous reading (the
--   influencer's previous feature date within 28 days), divided by the days between the two
--   crawls' observed_on; NULL when both rows read the same crawl (nothing new was seen).
-- - jump_score: a robust z-score of daily_growth_pct against the influencer's own daily
--   growth rates of the 28 days before the feature date (d - 28 to d - 1):
--   (g - median) / (1.4826 * MAD), the
--   scaled MAD floored at 0.1 percentage points a day (a steady account's MAD is near 0,
--   and a tiny wobble must not score as a jump). NULL with fewer than 5 earlier rates.
-- - follower_jump: jump_score above 3.5 (Iglewicz and Hoaglin's cutoff for outliers):
--   followers grew far faster than this influencer's own recent pace. Drops are not
--   flagged (jump_score shows them, negative). NULL when jump_score is NULL.
-- Nothing looks back more than 56 days (a rate 28 days back, against a reading 28 days
-- before it; the 28-day growth), so the rows of first_day..last_day need the features from
-- first_day - 56 days on, and the macro reads no more (NULL: unbounded).
-- Grain: one row per influencer per feature date from first_day to last_day.
-- Key: (username, feature_date).
CREATE OR REPLACE MACRO features.influencer_history_between(first_day, last_day) AS TABLE
WITH readings AS (
    SELECT
        f.username,
        f.feature_date,
        f.feature_date - DATE '2000-01-01' AS day_number,  -- integer days: cheaper window frames
        r.as_of_date AS observed_on,
        f.follower,
        f.er,
        f.active_rate,
        f.is_clusterable
    FROM features.influencer_features AS f
    JOIN raw.crawl_runs AS r USING (crawl_id)
    WHERE (first_day IS NULL OR f.feature_date >= CAST(first_day AS DATE) - INTERVAL 56 DAY)
      AND (last_day IS NULL OR f.feature_date <= CAST(last_day AS DATE))
),
compared AS (
    SELECT
        *,
        last_value({'follower': follower, 'feature_date': feature_date}) OVER (
            PARTITION BY username ORDER BY day_number RANGE BETWEEN 14 PRECEDING AND 7 PRECEDING
        ) AS week_before,
        last_value({'follower': follower, 'feature_date': feature_date}) OVER (
            PARTITION BY username ORDER BY day_number RANGE BETWEEN 56 PRECEDING AND 28 PRECEDING
        ) AS month_before,
        lag({'follower': follower, 'observed_on': observed_on, 'day_number': day_number}) OVER (
            PARTITION BY username ORDER BY day_number
        ) AS previous
    FROM readings
),
daily AS (
    SELECT
        *,
        CASE WHEN day_number - previous.day_number <= 28
                  AND previous.follower > 0
                  AND observed_on > previous.observed_on
             THEN (follower - previous.follower) * 100.0 / previous.follower
                  / (observed_on - previous.observed_on)
        END AS daily_growth_pct
    FROM compared
),
wanted AS (
    SELECT * FROM daily WHERE first_day IS NULL OR feature_date >= CAST(first_day AS DATE)
),
-- The median and MAD of the daily rates of the 28 days before each wanted row, by an
-- equality join on the 28 days (at most one row a day each): linear in the rows wanted,
-- and computed for those only (a window would compute them for the look-back rows too).
recent_pace AS (
    SELECT
        w.username,
        w.feature_date,
        count(e.daily_growth_pct)  AS earlier_rates,
        median(e.daily_growth_pct) AS median_rate,
        mad(e.daily_growth_pct)    AS mad_rate
    FROM wanted AS w
    CROSS JOIN range(1, 29) AS back(days)
    JOIN daily AS e ON e.username = w.username AND e.day_number = w.day_number - back.days
    WHERE first_day IS NULL OR e.feature_date >= CAST(first_day AS DATE) - INTERVAL 28 DAY
    GROUP BY w.username, w.feature_date
),
latest_snapshot_per_day AS (
    SELECT feature_date, max(version) AS version FROM clusters.snapshots GROUP BY feature_date
),
scored AS (
    SELECT
        w.*,
        CASE WHEN p.earlier_rates >= 5
             THEN (w.daily_growth_pct - p.median_rate) / greatest(1.4826 * p.mad_rate, 0.1)
        END AS jump_score
    FROM wanted AS w
    LEFT JOIN recent_pace AS p USING (username, feature_date)
)
SELECT
    s.username,
    s.feature_date,
    s.observed_on,
    s.follower,
    s.er,
    s.active_rate,
    s.is_clusterable,
    a.version AS snapshot_version,
    a.persona,
    s.follower - s.week_before.follower AS follower_growth_7d,
    (s.follower - s.week_before.follower) * 100.0 / nullif(s.week_before.follower, 0) AS follower_growth_7d_pct,
    s.week_before.feature_date AS follower_growth_7d_since,
    s.follower - s.month_before.follower AS follower_growth_28d,
    (s.follower - s.month_before.follower) * 100.0 / nullif(s.month_before.follower, 0) AS follower_growth_28d_pct,
    s.month_before.feature_date AS follower_growth_28d_since,
    s.daily_growth_pct,
    s.jump_score,
    s.jump_score > 3.5 AS follower_jump
FROM scored AS s
LEFT JOIN latest_snapshot_per_day AS l USING (feature_date)
LEFT JOIN clusters.assignments AS a ON a.version = l.version AND a.username = s.username;

-- Grain: one row per influencer per feature date. Key: (username, feature_date).
-- Every feature date of every influencer (rules above); filter by username to read only
-- that influencer's rows, or use features.influencer_history_between(first_day, last_day)
-- to compute only some dates.
CREATE OR REPLACE VIEW features.influencer_history AS
FROM features.influencer_history_between(NULL, NULL);
