-- What each load and removal changed in its dataset table's layout (columns added, types
-- widened, columns dropped), as a JSON array, for the load history and the daily reports.
-- Constant defaults: adding these columns rewrites nothing.
ALTER TABLE geoflow.loads ADD COLUMN schema_changes jsonb NOT NULL DEFAULT '[]';
ALTER TABLE geoflow.removals ADD COLUMN schema_changes jsonb NOT NULL DEFAULT '[]';
