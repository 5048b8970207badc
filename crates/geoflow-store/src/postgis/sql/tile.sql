-- One vector tile of a dataset (see crate::tiles for the rules), in one statement.
-- $1..$4 min x, min y, max x, max y of the tile and $5 the SRID of its tile matrix set's CRS
-- (3857 for WebMercatorQuad, 4326 for WorldCRS84Quad, which ST_TileEnvelope does not know);
-- $6..$9 west, south, east, north of the tile with its buffer, in degrees (computed by the
-- client: a margin must not stop at the world's edge, and a box beyond ±180° would wrap round
-- when transformed); $10 the simplification tolerance and $11 one pixel, both in units of the
-- tile's CRS; $12 the layer name; $13 the size budget in bytes.
-- Rows are found with `geom && <buffered tile in EPSG:4326>` so that the GIST index answers.
-- Each geometry is first cut to that box in EPSG:4326 (so that nothing near the poles, where
-- WebMercator is infinite, is projected), then projected (a no-op for EPSG:4326), simplified
-- and made a tile geometry.
-- A feature that vanishes on the pixel grid becomes a one-pixel polygon or line at a point on
-- it. Properties are aliased p0, p1, … (the client puts the original keys in their place).
--
-- The tile geometries are made once (`shaped`). The tile is a COALESCE of its encodings,
-- finest first: each is NULL when over the budget ($13 bytes), and COALESCE
-- evaluates only those it needs; the last is taken whatever its size. Encodings that only
-- simplify keep every feature and every property, so two floors under their size let them be
-- skipped unencoded:
-- * `stats.least_bytes`, from counts alone: a feature takes at least 11 bytes (framing, id, type,
--   the smallest geometry), a property value 2 (key and value indexes) and a feature's tag list 2;
-- * `property_floor`, once the finest encoding is known to be over: its bytes less those of the same features
--   without properties (`bare`), less the 4 bytes by which a feature's length prefix, and the
--   layer's, may each shrink.
-- Beside the tile comes the count of features in it (`stats.n`): what a thinned encoding
-- leaves out is that less the features it holds.
WITH bounds AS (
  SELECT ST_MakeEnvelope($1::double precision, $2::double precision, $3::double precision, $4::double precision,
                         $5::integer) AS tile,
         ST_MakeEnvelope($6::double precision, $7::double precision, $8::double precision, $9::double precision, 4326) AS area
),
clipped AS (
  SELECT t.fid, ST_Transform(ST_ClipByBox2D(t.geom, b.area::box2d), $5::integer) AS g{properties}
  FROM {table} AS t, bounds AS b
  WHERE t.geom && b.area
  OFFSET 0 -- keeps `g` a column: inlined, each use of it would cut and project again
),
shaped AS MATERIALIZED (
  SELECT c.fid,
         COALESCE(
           ST_AsMVTGeom(ST_Simplify(c.g, $10::double precision, true), b.tile, 4096, 64, true),
           ST_AsMVTGeom(
             CASE WHEN ST_Dimension(c.g) = 2 THEN ST_Expand(ST_PointOnSurface(c.g), $11::double precision)
                  WHEN ST_Dimension(c.g) = 1 THEN ST_MakeLine(ST_PointOnSurface(c.g),
                                                             ST_Translate(ST_PointOnSurface(c.g), 2 * $11::double precision, 0))
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
  SELECT ST_AsMVT(f, $12::text, 4096, 'geom', 'fid') AS mvt FROM shaped AS f WHERE f.geom IS NOT NULL
),
bare AS (
  SELECT coalesce(length(ST_AsMVT(b, $12::text, 4096, 'geom', 'fid')), 0) AS bytes
  FROM (SELECT s.fid, s.geom FROM shaped AS s WHERE s.geom IS NOT NULL) AS b
),
property_floor AS (
  SELECT (SELECT length(mvt) FROM finest) - 4 * s.n - 4 - (SELECT bytes FROM bare) AS bytes FROM stats AS s
)
SELECT {encodings} AS mvt, (SELECT n FROM stats) AS in_tile
