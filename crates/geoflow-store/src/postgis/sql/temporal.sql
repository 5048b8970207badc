-- The properties that place a dataset's features in time, which datetime filters follow (NULL:
-- the load time).
ALTER TABLE geoflow.datasets ADD COLUMN IF NOT EXISTS temporal_start text;
ALTER TABLE geoflow.datasets ADD COLUMN IF NOT EXISTS temporal_end text;
