-- Finished runs (an interrupted crawl keeps what it stored) that no validation has seen.
CREATE OR REPLACE VIEW staging.unvalidated_crawls AS
SELECT r.crawl_id, r.source, r.as_of_date, r.finished_at
FROM raw.crawl_runs AS r
WHERE r.status IN ('succeeded', 'interrupted')
  AND NOT EXISTS (SELECT 1 FROM quality.validation_runs AS v WHERE v.crawl_id = r.crawl_id);
