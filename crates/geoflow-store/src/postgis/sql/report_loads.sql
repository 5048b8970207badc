-- The loads finished in [$1, $2), per dataset and (dataset NULL) over all of them.
SELECT dataset,
  count(*) FILTER (WHERE status = 'loaded'),
  count(*) FILTER (WHERE status = 'failed'),
  count(*) FILTER (WHERE status = 'unchanged'),
  coalesce(sum(features_read) FILTER (WHERE status <> 'unchanged'), 0)::bigint,
  coalesce(sum(features_loaded) FILTER (WHERE status = 'loaded'), 0)::bigint,
  coalesce(sum(invalid) FILTER (WHERE status <> 'unchanged'), 0)::bigint,
  coalesce(sum(repaired) FILTER (WHERE status <> 'unchanged'), 0)::bigint,
  coalesce(sum(skipped) FILTER (WHERE status <> 'unchanged'), 0)::bigint,
  coalesce(sum(area_m2) FILTER (WHERE status = 'loaded'), 0),
  coalesce(sum(length_m) FILTER (WHERE status = 'loaded'), 0),
  min(min_x) FILTER (WHERE status = 'loaded'), min(min_y) FILTER (WHERE status = 'loaded'),
  max(max_x) FILTER (WHERE status = 'loaded'), max(max_y) FILTER (WHERE status = 'loaded'),
  coalesce(sum(bytes), 0)::bigint,
  percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms),
  percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms),
  max(duration_ms)
FROM geoflow.loads
WHERE finished_at >= $1 AND finished_at < $2
GROUP BY GROUPING SETS ((dataset), ())
