-- Object versions of sources, and the jobs catalog. Like the rest of the catalog, the jobs
-- table is not registered in gpkg_contents: the "aspatial" extension declared by the
-- catalog migration keeps GDAL from listing it.

-- The storage's version id or ETag of the object a source was loaded from (NULL for local
-- files); lets a redelivered event be recognised before the object is read.
ALTER TABLE geoflow_sources ADD COLUMN object_version TEXT;
ALTER TABLE geoflow_loads ADD COLUMN object_version TEXT;

-- One unit of work from one event, with its status history.
CREATE TABLE geoflow_jobs (
  id TEXT NOT NULL PRIMARY KEY,
  dataset TEXT NOT NULL,
  source_key TEXT NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('load', 'remove')),
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped-duplicate')),
  object_version TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  load_id INTEGER,
  error TEXT,
  -- The worker's summary, JSON text.
  result_json TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT
);

CREATE INDEX geoflow_jobs_created ON geoflow_jobs (created_at DESC, id DESC);
CREATE INDEX geoflow_jobs_dataset_created ON geoflow_jobs (dataset, created_at DESC);
