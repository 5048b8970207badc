-- The catalog's view of datasets in one round trip: every dataset, or the one named $1 when
-- the filter placeholder below is filled with that condition. Timestamps as RFC 3339 UTC text;
-- property columns in table order, aggregated in one scan of the columns' index.
-- The one-dataset form is a statement of its own, with no NULL test on $1: its generic plan
-- is then as good as a custom one, and PostgreSQL stops planning it on every call.
SELECT d.name, d.version, to_char(d.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
  d.feature_count, d.min_x, d.min_y, d.max_x, d.max_y, d.table_name,
  (SELECT count(*) FROM geoflow.sources s WHERE s.dataset = d.name),
  coalesce(c.keys, '{}'), coalesce(c.names, '{}'), coalesce(c.types, '{}'),
  d.mode, d.key_property,
  (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
   WHERE a.attrelid = to_regclass(format('%I.%I', 'datasets', d.table_name)) AND a.attname = 'geom'
     AND NOT a.attisdropped),
  d.temporal_start, d.temporal_end, coalesce(c.overflow, '{}')
FROM geoflow.datasets d
LEFT JOIN LATERAL (
  SELECT array_agg(c.key ORDER BY c.ordinal) AS keys, array_agg(c.column_name ORDER BY c.ordinal) AS names,
    array_agg(c.field_type ORDER BY c.ordinal) AS types, array_agg(c.overflow ORDER BY c.ordinal) AS overflow
  FROM geoflow.columns c WHERE c.dataset = d.name) c ON true
{filter}
ORDER BY d.name
