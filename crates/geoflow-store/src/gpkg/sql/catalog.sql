-- geoflow's catalog. These tables are not registered in gpkg_contents. GDAL (and so QGIS)
-- still lists unregistered tables as layers unless the GeoPackage declares GDAL's
-- "aspatial" extension, which makes it list only what gpkg_contents registers.

INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope)
SELECT NULL, NULL, 'gdal_aspatial', 'http://gdal.org/geopackage_aspatial.html', 'read-write'
WHERE NOT EXISTS (SELECT 1 FROM gpkg_extensions
                  WHERE extension_name = 'gdal_aspatial' AND table_name IS NULL AND column_name IS NULL);

CREATE TABLE geoflow_datasets (
  name TEXT NOT NULL PRIMARY KEY,
  table_name TEXT NOT NULL UNIQUE,
  -- FieldType of the feature_id column.
  id_type TEXT NOT NULL DEFAULT 'null',
  version INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- The persistent mapping of a dataset's property keys to its columns.
CREATE TABLE geoflow_columns (
  dataset TEXT NOT NULL,
  ordinal INTEGER NOT NULL,
  key TEXT NOT NULL,
  column_name TEXT NOT NULL,
  field_type TEXT NOT NULL,
  PRIMARY KEY (dataset, key),
  UNIQUE (dataset, ordinal)
);

CREATE TABLE geoflow_sources (
  dataset TEXT NOT NULL,
  source_key TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  feature_count INTEGER NOT NULL,
  load_id INTEGER NOT NULL,
  loaded_at TEXT NOT NULL,
  PRIMARY KEY (dataset, source_key)
);

CREATE TABLE geoflow_loads (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dataset TEXT NOT NULL,
  source_key TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  policy TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('loaded', 'unchanged', 'failed')),
  started_at TEXT NOT NULL,
  finished_at TEXT NOT NULL,
  features_read INTEGER NOT NULL DEFAULT 0,
  features_loaded INTEGER NOT NULL DEFAULT 0,
  invalid INTEGER NOT NULL DEFAULT 0,
  repaired INTEGER NOT NULL DEFAULT 0,
  skipped INTEGER NOT NULL DEFAULT 0,
  issue_total INTEGER NOT NULL DEFAULT 0,
  issues_json TEXT NOT NULL DEFAULT '[]',
  error TEXT,
  min_x REAL,
  min_y REAL,
  max_x REAL,
  max_y REAL
);

CREATE INDEX geoflow_loads_dataset_source ON geoflow_loads (dataset, source_key);
