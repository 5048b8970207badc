-- What the daily reports need: per-load totals recorded with each load, removals of sources,
-- and indexes on the times a report's day selects by.

-- The load's duration, problems by code, features by geometry type, and the area and length
-- of what was loaded.
ALTER TABLE geoflow_loads ADD COLUMN duration_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE geoflow_loads ADD COLUMN problem_counts_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE geoflow_loads ADD COLUMN geometry_types_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE geoflow_loads ADD COLUMN area_m2 REAL NOT NULL DEFAULT 0;
ALTER TABLE geoflow_loads ADD COLUMN length_m REAL NOT NULL DEFAULT 0;
CREATE INDEX geoflow_loads_finished_at ON geoflow_loads (finished_at);

-- A source removed from its dataset (its object was deleted): with the loads, this gives a
-- dataset's state at any past moment.
CREATE TABLE geoflow_removals (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dataset TEXT NOT NULL,
  source_key TEXT NOT NULL,
  removed_rows INTEGER NOT NULL,
  removed_at TEXT NOT NULL
);
CREATE INDEX geoflow_removals_removed_at ON geoflow_removals (removed_at);

CREATE INDEX geoflow_jobs_finished_at ON geoflow_jobs (finished_at) WHERE finished_at IS NOT NULL;
