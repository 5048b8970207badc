-- Properties beyond the columns a table can have are kept as members of one JSON column,
-- gf_overflow, under their original keys: the catalog lists them like columns, marked
-- overflow, all with that column's name.
ALTER TABLE geoflow_columns ADD COLUMN overflow INTEGER NOT NULL DEFAULT 0 CHECK (overflow IN (0, 1));
