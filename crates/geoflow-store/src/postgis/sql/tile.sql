-- One vector tile of a dataset (see crate::tiles for the rules), in one statement.
-- $1..$3 z, x, y; $4..$7 west, south, east, north of the tile with its buffer, in degrees
-- (computed by the client: ST_TileEnvelope's margin stops at the world's edge, and a box
-- beyond ±180° would wrap round when transformed); $8 the simplification tolerance and $9 one
-- pixel, both in EPSG:3857 metres; $10 the layer name; $11 the size budget in bytes.
-- Rows are found with `geom && <buffered tile in EPSG:4326>` so that the GIST index answers.
-- Each geometry is first cut to that box in EPSG:4326 (so that nothing near the poles, where
-- WebMercator is infinite, is projected), then projected, simplified and made a tile geometry.
-- A feature that vanishes on the pixel grid becomes a one-pixel polygon or line at a point on
-- it. Properties are aliased p0, p1, … (the client puts the original keys in their place).
--
-- The tile geometries are made once (`shaped`). The tile is a COALESCE of its encodings,
-- finest first: each is NULL when over the budget ($11 bytes), and COALESCE
-- evaluates only those it needs; the last is taken whatever its size. Encodings that only
-- simplify keep every feature and every property, so two floors under their size let them be
-- skipped unencoded:
-- * `stats.least_bytes`, from counts alone: a feature takes at least 11 bytes (framing, id, type,
--   the smallest geometry), a property value 2 (key and value indexes) and a feature's tag list 2;
-- * `property_floor`, once the finest encoding is known to be over: its bytes less those of the same features
--   without properties (`bare`), less the 4 bytes by which a feature's length prefix, and the
--   layer's, may each shrink.
WITH bounds AS (
  SELECT ST_TileEnvelope($1::integer, $2::integer, $3::integer) AS tile,
         ST_MakeEnvelope($4::double precision, $5::double precision, $6::double precision, $7::double precision, 4326) AS area
),
clipped AS (
  SELECT t.fid, ST_Transform(ST_ClipByBox2D(t.geom, b.area::box2d), 3857) AS g{properties}
  FROM {table} AS t, bounds AS b
  WHERE t.geom && b.area
  OFFSET 0 -- keeps `g` a column: inlined, each use of it would cut and project again
),
shaped AS MATERIALIZED (
  SELECT c.fid,
         COALESCE(
           ST_AsMVTGeom(ST_Simplify(c.g, $8::double precision, true), b.tile, 4096, 64, true),
           ST_AsMVTGeom(
             CASE WHEN ST_Dimension(c.g) = 2 THEN ST_Expand(ST_PointOnSurface(c.g), $9::double precision)
                  WHEN ST_Dimension(c.g) = 1 THEN ST_MakeLine(ST_PointOnSurface(c.g),
                                                             ST_Translate(ST_PointOnSurface(c.g), 2 * $9::double precision, 0))
             END,
             b.tile, 4096, 64, true)
         ) AS geom{columns}
  FROM clipped AS c, bounds AS b
  WHERE NOT ST_IsEmpty(c.g)
),
stats AS (
  SELECT count(*) AS n, 11 * count(*) + {least_property_bytes} AS least_bytes
  FROM shaped AS s WHERE s.geom IS NOT NULL
),
finest AS (
  SELECT ST_AsMVT(f, $10::text, 4096, 'geom', 'fid') AS mvt FROM shaped AS f WHERE f.geom IS NOT NULL
),
bare AS (
  SELECT coalesce(length(ST_AsMVT(b, $10::text, 4096, 'geom', 'fid')), 0) AS bytes
  FROM (SELECT s.fid, s.geom FROM shaped AS s WHERE s.geom IS NOT NULL) AS b
),
property_floor AS (
  SELECT (SELECT length(mvt) FROM finest) - 4 * s.n - 4 - (SELECT bytes FROM bare) AS bytes FROM stats AS s
)
SELECT {encodings}
