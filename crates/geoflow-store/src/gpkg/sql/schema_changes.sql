-- What each load and removal changed in its dataset table's layout (columns added, types
-- widened, columns dropped), as a JSON array, for the load history and the daily reports.
ALTER TABLE geoflow_loads ADD COLUMN schema_changes_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE geoflow_removals ADD COLUMN schema_changes_json TEXT NOT NULL DEFAULT '[]';
