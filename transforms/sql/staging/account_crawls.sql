-- Profiles of readable crawls whose outcome says the profile was read; rows validation
-- quarantined are left out.
CREATE OR REPLACE VIEW staging.account_crawls AS
SELECT
    p.crawl_id,
    p.username,
    r.source,
    r.as_of_date,
    p.fetched_at,
    p.followers,
    p.follows,
    p.media_count,
    coalesce(p.is_private, false)  AS is_private,
    coalesce(p.is_verified, false) AS is_verified
FROM raw.profiles AS p
JOIN staging.readable_crawls AS r USING (crawl_id)
JOIN raw.account_outcomes AS o USING (crawl_id, username)
WHERE o.status IN ('ok', 'private')
  AND NOT EXISTS (
      SELECT 1 FROM quality.quarantined_rows AS q
      WHERE q.table_name = 'raw.profiles' AND q.crawl_id = p.crawl_id AND q.username = p.username
  );
