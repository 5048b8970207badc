-- What reading a dataset's features needs from the catalog, in one round trip: its table and
-- its property columns in table order, with the version and last change of the dataset they
-- are of (as the stamp statement reads them). One row with NULL columns when it has no
-- property; no row when the dataset is unknown.
SELECT d.table_name, c.key, c.column_name, c.field_type, c.overflow, d.version, d.updated_at::text
FROM geoflow.datasets d
LEFT JOIN geoflow.columns c ON c.dataset = d.name
WHERE d.name = $1
ORDER BY c.ordinal
