-- Properties beyond the columns a table can have are kept as members of one JSON column,
-- gf_overflow, under their original keys: the catalog lists them like columns, marked
-- overflow, all with that column's name.
ALTER TABLE geoflow.columns ADD COLUMN IF NOT EXISTS overflow boolean NOT NULL DEFAULT false;
ALTER TABLE geoflow.columns DROP CONSTRAINT IF EXISTS columns_dataset_column_name_key;
CREATE UNIQUE INDEX IF NOT EXISTS columns_dataset_column_name_key
  ON geoflow.columns (dataset, column_name) WHERE NOT overflow;
