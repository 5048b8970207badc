-- Loads and jobs that end superseded: storage held a newer state of the object by the time
-- they would have committed, so they changed nothing. SQLite cannot change a CHECK
-- constraint in place: each table is rebuilt with the same columns, rows and indexes.

CREATE TABLE geoflow_loads_next (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dataset TEXT NOT NULL,
  source_key TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  policy TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('loaded', 'unchanged', 'failed', 'superseded')),
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
  max_y REAL,
  object_version TEXT,
  duration_ms INTEGER NOT NULL DEFAULT 0,
  problem_counts_json TEXT NOT NULL DEFAULT '{}',
  geometry_types_json TEXT NOT NULL DEFAULT '{}',
  area_m2 REAL NOT NULL DEFAULT 0,
  length_m REAL NOT NULL DEFAULT 0
);
INSERT INTO geoflow_loads_next SELECT * FROM geoflow_loads;
DROP TABLE geoflow_loads;
ALTER TABLE geoflow_loads_next RENAME TO geoflow_loads;
CREATE INDEX geoflow_loads_dataset_source ON geoflow_loads (dataset, source_key);
CREATE INDEX geoflow_loads_finished_at ON geoflow_loads (finished_at);

CREATE TABLE geoflow_jobs_next (
  id TEXT NOT NULL PRIMARY KEY,
  dataset TEXT NOT NULL,
  source_key TEXT NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('load', 'remove')),
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
