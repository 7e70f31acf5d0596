-- Window functions over each influencer's own rows (partitioned by username), so that a
-- filter on username reaches the scan of the features. Nothing looks back more than 56
-- days (a rate 28 days back, against a reading 28 days before it; the 28-day growth), so
-- the rows of first_day..last_day need the features from first_day - 56 days on, and the
-- macro reads no more (NULL: unbounded).
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
