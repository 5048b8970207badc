-- The catalog's view of the datasets in one round trip: every dataset when $1 is NULL, else
-- the one named $1. Timestamps as RFC 3339 UTC text; property columns in table order.
SELECT d.name, d.version, to_char(d.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
  d.feature_count, d.min_x, d.min_y, d.max_x, d.max_y, d.table_name,
  (SELECT count(*) FROM geoflow.sources s WHERE s.dataset = d.name),
  ARRAY(SELECT c.key FROM geoflow.columns c WHERE c.dataset = d.name ORDER BY c.ordinal),
  ARRAY(SELECT c.column_name FROM geoflow.columns c WHERE c.dataset = d.name ORDER BY c.ordinal),
  ARRAY(SELECT c.field_type FROM geoflow.columns c WHERE c.dataset = d.name ORDER BY c.ordinal),
  d.mode, d.key_property,
  (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
   WHERE a.attrelid = to_regclass(format('%I.%I', 'datasets', d.table_name)) AND a.attname = 'geom'
     AND NOT a.attisdropped),
  d.temporal_start, d.temporal_end
FROM geoflow.datasets d
WHERE $1::text IS NULL OR d.name = $1
ORDER BY d.name
