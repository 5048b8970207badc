-- What the daily reports need: per-load totals recorded with each load, removals of sources,
-- and indexes on the times a report's day selects by.

-- Problems by code, features by geometry type, and the area and length of what was loaded.
-- Constant defaults: adding these columns rewrites nothing.
ALTER TABLE geoflow.loads
  ADD COLUMN problem_counts jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN geometry_types jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN area_m2 double precision NOT NULL DEFAULT 0,
  ADD COLUMN length_m double precision NOT NULL DEFAULT 0;
CREATE INDEX loads_finished_at ON geoflow.loads (finished_at);

-- A source removed from its dataset (its object was deleted): with the loads, this gives a
-- dataset's state at any past moment.
CREATE TABLE geoflow.removals (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset text NOT NULL,
  source_key text NOT NULL,
  removed_rows bigint NOT NULL,
  removed_at timestamptz NOT NULL
);
CREATE INDEX removals_removed_at ON geoflow.removals (removed_at);

CREATE INDEX jobs_finished_at ON geoflow.jobs (finished_at) WHERE finished_at IS NOT NULL;
