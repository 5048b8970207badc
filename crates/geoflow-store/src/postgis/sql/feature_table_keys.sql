ALTER TABLE {table} ADD PRIMARY KEY (fid);
CREATE INDEX ON {table} (gf_source);
