-- Finished runs every validation of which passed its table-level checks (schema, volume):
-- only their rows are read.
CREATE OR REPLACE VIEW staging.readable_crawls AS
SELECT r.crawl_id, r.source, r.as_of_date, r.finished_at
FROM raw.crawl_runs AS r
JOIN (
    SELECT crawl_id FROM quality.validation_runs
    WHERE crawl_id IS NOT NULL
    GROUP BY crawl_id
    HAVING bool_and(table_level_ok)
) AS validated USING (crawl_id)
WHERE r.status IN ('succeeded', 'interrupted');
