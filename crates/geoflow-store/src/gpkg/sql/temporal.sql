-- The properties that place a dataset's features in time, which datetime filters follow (NULL:
-- the load time).
ALTER TABLE geoflow_datasets ADD COLUMN temporal_start TEXT;
ALTER TABLE geoflow_datasets ADD COLUMN temporal_end TEXT;
