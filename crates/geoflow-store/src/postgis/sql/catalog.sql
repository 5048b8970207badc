-- geoflow's catalog: datasets, the key → column mapping of their tables, loaded sources and
-- the history of loads. Dataset tables live in schema "datasets".

CREATE SCHEMA IF NOT EXISTS datasets;

CREATE TABLE geoflow.datasets (
  name text PRIMARY KEY,
  -- The table in schema "datasets".
  table_name text NOT NULL UNIQUE,
  -- FieldType of the feature_id column.
  id_type text NOT NULL DEFAULT 'null',
  -- Bumped by every change of the dataset's rows (for cache validators).
  version bigint NOT NULL DEFAULT 0,
  -- Rows in the table and their extent (degrees, EPSG:4326), kept up to date by each load.
  feature_count bigint NOT NULL DEFAULT 0,
  min_x double precision,
  min_y double precision,
  max_x double precision,
  max_y double precision,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The persistent mapping of a dataset's property keys to its columns.
CREATE TABLE geoflow.columns (
  dataset text NOT NULL REFERENCES geoflow.datasets (name) ON DELETE CASCADE,
  ordinal integer NOT NULL,
  key text NOT NULL,
  column_name text NOT NULL,
  field_type text NOT NULL,
  PRIMARY KEY (dataset, key),
  UNIQUE (dataset, ordinal),
  UNIQUE (dataset, column_name)
);

CREATE TABLE geoflow.sources (
  dataset text NOT NULL REFERENCES geoflow.datasets (name) ON DELETE CASCADE,
  source_key text NOT NULL,
  content_hash text NOT NULL,
  bytes bigint NOT NULL,
  -- Rows of this source in the dataset table, and their extent.
  feature_count bigint NOT NULL,
  min_x double precision,
  min_y double precision,
  max_x double precision,
  max_y double precision,
  load_id bigint NOT NULL,
  loaded_at timestamptz NOT NULL,
  PRIMARY KEY (dataset, source_key)
);

CREATE TABLE geoflow.loads (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset text NOT NULL,
  source_key text NOT NULL,
  content_hash text NOT NULL,
  bytes bigint NOT NULL,
  policy text NOT NULL,
  status text NOT NULL CHECK (status IN ('loaded', 'unchanged', 'failed')),
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL,
  duration_ms bigint NOT NULL DEFAULT 0,
  features_read bigint NOT NULL DEFAULT 0,
  features_loaded bigint NOT NULL DEFAULT 0,
  invalid bigint NOT NULL DEFAULT 0,
  repaired bigint NOT NULL DEFAULT 0,
  skipped bigint NOT NULL DEFAULT 0,
  issue_total bigint NOT NULL DEFAULT 0,
  issues jsonb NOT NULL DEFAULT '[]',
  error text,
  -- Rows the load replaced and stored.
  replaced_rows bigint NOT NULL DEFAULT 0,
  stored_rows bigint NOT NULL DEFAULT 0,
  min_x double precision,
  min_y double precision,
  max_x double precision,
  max_y double precision
);

CREATE INDEX loads_dataset_source ON geoflow.loads (dataset, source_key);
CREATE INDEX loads_started_at ON geoflow.loads (started_at);
