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

-- Dropping a dataset is a job too: the jobs table is rebuilt with the wider action check, its
-- rows and its indexes.
CREATE TABLE geoflow_jobs_next (
  id TEXT NOT NULL PRIMARY KEY,
  dataset TEXT NOT NULL,
  source_key TEXT NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('load', 'remove', 'drop')),
  status TEXT NOT NULL
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped-duplicate', 'superseded')),
  object_version TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  load_id INTEGER,
  error TEXT,
  result_json TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT
);
INSERT INTO geoflow_jobs_next SELECT * FROM geoflow_jobs;
DROP TABLE geoflow_jobs;
ALTER TABLE geoflow_jobs_next RENAME TO geoflow_jobs;
CREATE INDEX geoflow_jobs_created ON geoflow_jobs (created_at DESC, id DESC);
CREATE INDEX geoflow_jobs_dataset_created ON geoflow_jobs (dataset, created_at DESC);
CREATE INDEX geoflow_jobs_finished_at ON geoflow_jobs (finished_at) WHERE finished_at IS NOT NULL;
