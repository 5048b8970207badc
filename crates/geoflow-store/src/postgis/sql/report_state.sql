-- Each dataset's sources and features as they stood at $1: per source, the last of its
-- successful loads and removals before then decides.
WITH events AS (
  SELECT dataset, source_key, finished_at AS at, 0 AS kind, stored_rows AS rows
  FROM geoflow.loads WHERE status = 'loaded' AND finished_at < $1
  UNION ALL
  SELECT dataset, source_key, removed_at, 1, NULL FROM geoflow.removals WHERE removed_at < $1
), ranked AS (
  SELECT dataset, rows,
    row_number() OVER (PARTITION BY dataset, source_key ORDER BY at DESC, kind DESC) AS latest
  FROM events
)
SELECT dataset, count(rows), coalesce(sum(rows), 0)::bigint
FROM ranked WHERE latest = 1
GROUP BY dataset
