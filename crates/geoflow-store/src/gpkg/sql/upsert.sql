-- Upsert mode: features keyed by their Feature id or by a named property (key_property; NULL
-- for the Feature id), the newest object winning each key. SQLite cannot change a CHECK
-- constraint in place: the table is rebuilt with the new one.
CREATE TABLE geoflow_datasets_upsert (
  name TEXT NOT NULL PRIMARY KEY,
  table_name TEXT NOT NULL UNIQUE,
  -- FieldType of the feature_id column.
  id_type TEXT NOT NULL DEFAULT 'null',
  version INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  mode TEXT NOT NULL DEFAULT 'append' CHECK (mode IN ('replace', 'append', 'upsert')),
  key_property TEXT
);
INSERT INTO geoflow_datasets_upsert (name, table_name, id_type, version, created_at, updated_at, mode)
SELECT name, table_name, id_type, version, created_at, updated_at, mode FROM geoflow_datasets;
DROP TABLE geoflow_datasets;
ALTER TABLE geoflow_datasets_upsert RENAME TO geoflow_datasets;
