CREATE TABLE {table} (
  -- The primary key and the spatial index are created by feature_table_keys.sql and
  -- table::create_spatial_index.
  fid bigint GENERATED ALWAYS AS IDENTITY,
  -- Typed (geometry(MultiPolygon,4326), say) when the data allows; without a type modifier
  -- when 2D and 3D geometries mix. The check keeps the SRID either way.
  geom {geometry_type}{geometry_compression} CHECK (ST_SRID(geom) = 4326),
  feature_id {id_type},
  gf_source text NOT NULL,
  gf_load_id bigint NOT NULL,
  gf_loaded_at timestamptz NOT NULL,
  gf_feature_index bigint NOT NULL,
  gf_geometry_type text,
  gf_area_m2 double precision,
  gf_length_m double precision,
  gf_vertices integer,
  gf_min_x double precision,
  gf_min_y double precision,
  gf_max_x double precision,
  gf_max_y double precision{columns}
);
