CREATE TABLE {table} (
  fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  geom {geometry_type},
  feature_id {id_type},
  gf_source TEXT NOT NULL,
  gf_load_id INTEGER NOT NULL,
  gf_loaded_at DATETIME NOT NULL,
  gf_feature_index INTEGER NOT NULL,
  gf_geometry_type TEXT,
  gf_area_m2 REAL,
  gf_length_m REAL,
  gf_vertices INTEGER,
  gf_min_x REAL,
  gf_min_y REAL,
  gf_max_x REAL,
  gf_max_y REAL{columns}
);
