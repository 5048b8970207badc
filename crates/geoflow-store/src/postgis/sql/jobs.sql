-- Object versions of sources, and the jobs catalog.

-- The storage's version id or ETag of the object a source was loaded from (NULL for local
-- files); lets a redelivered event be recognised before the object is read. Adding a
-- nullable column without a default rewrites nothing.
ALTER TABLE geoflow.sources ADD COLUMN object_version text;
ALTER TABLE geoflow.loads ADD COLUMN object_version text;

-- One unit of work from one event, with its status history. Not tied to geoflow.datasets:
-- a job exists before its dataset does, and outlives it.
CREATE TABLE geoflow.jobs (
  id text PRIMARY KEY,
  dataset text NOT NULL,
  source_key text NOT NULL,
  action text NOT NULL CHECK (action IN ('load', 'remove')),
  status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'skipped-duplicate')),
  object_version text,
  attempts integer NOT NULL DEFAULT 0,
  load_id bigint,
  error text,
  -- The worker's summary, kept as given.
  result jsonb,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  started_at timestamptz,
  finished_at timestamptz
);

CREATE INDEX jobs_created ON geoflow.jobs (created_at DESC, id DESC);
CREATE INDEX jobs_dataset_created ON geoflow.jobs (dataset, created_at DESC);
