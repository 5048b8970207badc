-- What a dataset's layout was read at: its version and last change, which every load and
-- removal that changes the dataset (its columns included) moves. No row: no such dataset.
SELECT version, updated_at::text FROM geoflow.datasets WHERE name = $1
