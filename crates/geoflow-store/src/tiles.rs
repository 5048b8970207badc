//! Mapbox Vector Tiles of a dataset on two tile matrix sets of the OGC Two Dimensional Tile
//! Matrix Set standard (2.0), both 256-pixel tiles with rows counted from the north:
//! WebMercatorQuad (EPSG:3857, one tile at level 0) and WorldCRS84Quad (longitude and
//! latitude in degrees, two tiles side by side at level 0). This module holds the tile
//! coordinates, their checks and bounds, and the rules both stores follow when they encode a
//! tile.
//!
//! A tile has one layer, named after the dataset, with extent [`EXTENT`]. Geometries are
//! clipped to the tile grown by [`BUFFER`] pixels on each side, simplified for the zoom
//! ([`Detail::simplify_px`], in pixels of the tile grid) and snapped to the grid. A feature
//! that would vanish under that (a polygon or line smaller than a pixel) is kept as a
//! one-pixel polygon or line at a point on it, so that every feature intersecting a tile is in
//! it. Each feature's id is its `fid`; its properties are the dataset's non-null properties
//! under their original keys, nested JSON values as their JSON text.
//!
//! A tile larger than [`TILE_BUDGET_BYTES`] is encoded again with coarser [`DETAILS`] (more
//! simplification, then one feature per cell of a coarse grid): a tile is never refused for
//! its size. A thinned tile says how many of its features it left out
//! ([`EncodedTile::omitted`]).

use std::fmt;

/// Tile coordinate units per tile side.
pub const EXTENT: u32 = 4096;

/// Pixels (of [`EXTENT`]) of margin around a tile within which geometries are kept.
pub const BUFFER: u32 = 64;

/// The deepest zoom level served.
pub const MAX_ZOOM: u8 = 22;

/// Tiles above this many bytes (before any HTTP compression) are encoded again coarser.
pub const TILE_BUDGET_BYTES: usize = 500 * 1024;

/// Half the side of the WebMercator square, in metres (EPSG:3857 `x` runs from minus this
/// to this).
pub const WEB_MERCATOR_HALF_M: f64 = 20_037_508.342_789_244;

/// Radius of the WebMercator sphere, in metres.
const EARTH_RADIUS_M: f64 = 6_378_137.0;

/// The latitude at which WebMercator's square ends, in degrees.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_6;

/// Metres along the equator per degree of longitude, on the WGS84 ellipsoid: what the 2D Tile
/// Matrix Set standard takes to give scale denominators of tile matrix sets in degrees.
pub const METRES_PER_DEGREE: f64 = 2.0 * std::f64::consts::PI * EARTH_RADIUS_M / 360.0;

/// The size of a standard rendering pixel (0.28 mm) in metres, from which a tile matrix's
/// scale denominator follows from its cell size.
pub const STANDARD_PIXEL_M: f64 = 0.000_28;

/// Pixels per tile side in the tile matrix set definitions (an MVT tile has [`EXTENT`]
/// coordinate units per side whatever this is).
pub const TILE_SIZE_PX: u32 = 256;

/// A tile matrix set served: a grid of tiles for each zoom level, as the OGC registry defines
/// it. Serialised as its identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = TileMatrixSetId))]
pub enum TileMatrixSet {
    /// EPSG:3857; level `z` has `2^z` × `2^z` tiles.
    WebMercatorQuad,
    /// CRS84 (longitude, latitude in degrees); level `z` has `2^(z+1)` × `2^z` tiles.
    #[serde(rename = "WorldCRS84Quad")]
    WorldCrs84Quad,
}

impl TileMatrixSet {
    /// Every tile matrix set served, the default first.
    pub const ALL: [TileMatrixSet; 2] = [TileMatrixSet::WebMercatorQuad, TileMatrixSet::WorldCrs84Quad];

    /// The identifier in paths and in the registry.
    pub fn id(self) -> &'static str {
        match self {
            TileMatrixSet::WebMercatorQuad => "WebMercatorQuad",
            TileMatrixSet::WorldCrs84Quad => "WorldCRS84Quad",
        }
    }

    /// The tile matrix set named `id` (exactly, as the registry spells it).
    pub fn from_id(id: &str) -> Option<TileMatrixSet> {
        TileMatrixSet::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The registry's URI of the tile matrix set.
    pub fn uri(self) -> &'static str {
        match self {
            TileMatrixSet::WebMercatorQuad => "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
            TileMatrixSet::WorldCrs84Quad => "http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad",
        }
    }

    /// The URI of the CRS the tiles are square in.
    pub fn crs(self) -> &'static str {
        match self {
            TileMatrixSet::WebMercatorQuad => "http://www.opengis.net/def/crs/EPSG/0/3857",
            TileMatrixSet::WorldCrs84Quad => "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        }
    }

    /// The SRID of that CRS in PostGIS (CRS84 is EPSG:4326 with longitude first, as PostGIS
    /// stores it).
    pub fn srid(self) -> i32 {
        match self {
            TileMatrixSet::WebMercatorQuad => 3857,
            TileMatrixSet::WorldCrs84Quad => 4326,
        }
    }

    /// Columns and rows of level `z`.
    pub fn matrix_size(self, z: u8) -> (u64, u64) {
        let n = 1u64 << z;
        match self {
            TileMatrixSet::WebMercatorQuad => (n, n),
            TileMatrixSet::WorldCrs84Quad => (2 * n, n),
        }
    }

    /// The top left corner of every level, in units of the CRS.
    pub fn point_of_origin(self) -> (f64, f64) {
        match self {
            TileMatrixSet::WebMercatorQuad => (-WEB_MERCATOR_HALF_M, WEB_MERCATOR_HALF_M),
            TileMatrixSet::WorldCrs84Quad => (-180.0, 90.0),
        }
    }

    /// The side of a tile of level `z`, in units of the CRS (metres or degrees).
    pub fn tile_side(self, z: u8) -> f64 {
        let level0 = match self {
            TileMatrixSet::WebMercatorQuad => 2.0 * WEB_MERCATOR_HALF_M,
            TileMatrixSet::WorldCrs84Quad => 180.0,
        };
        level0 / f64::from(1u32 << z)
    }

    /// The size of one of [`TILE_SIZE_PX`] pixels of a tile of level `z`, in units of the CRS.
    pub fn cell_size(self, z: u8) -> f64 {
        self.tile_side(z) / f64::from(TILE_SIZE_PX)
    }

    /// The scale denominator of level `z`, for standard 0.28 mm pixels.
    pub fn scale_denominator(self, z: u8) -> f64 {
        let metres_per_unit = match self {
            TileMatrixSet::WebMercatorQuad => 1.0,
            TileMatrixSet::WorldCrs84Quad => METRES_PER_DEGREE,
        };
        self.cell_size(z) * metres_per_unit / STANDARD_PIXEL_M
    }

    /// The levels the registry defines (0 to this); tiles are served to [`MAX_ZOOM`].
    pub fn deepest_defined_level(self) -> u8 {
        match self {
            TileMatrixSet::WebMercatorQuad => 24,
            TileMatrixSet::WorldCrs84Quad => 23,
        }
    }

    /// The latitude where the grid ends, in degrees.
    pub fn max_latitude(self) -> f64 {
        match self {
            TileMatrixSet::WebMercatorQuad => MAX_LATITUDE,
            TileMatrixSet::WorldCrs84Quad => 90.0,
        }
    }

    /// Longitude and latitude in degrees to units of the CRS.
    pub fn project(self, lon: f64, lat: f64) -> (f64, f64) {
        match self {
            TileMatrixSet::WebMercatorQuad => to_mercator(lon, lat),
            TileMatrixSet::WorldCrs84Quad => (lon, lat),
        }
    }

    /// Units of the CRS to longitude and latitude in degrees.
    pub fn unproject(self, x: f64, y: f64) -> (f64, f64) {
        match self {
            TileMatrixSet::WebMercatorQuad => to_lonlat(x, y),
            TileMatrixSet::WorldCrs84Quad => (x, y),
        }
    }
}

impl fmt::Display for TileMatrixSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One tile: its tile matrix set, zoom level `z` (the tile matrix), `row` (from the north) and
/// `col` (from the west).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub tms: TileMatrixSet,
    pub z: u8,
    pub row: u32,
    pub col: u32,
}

/// Why tile coordinates name no tile; each names the coordinate at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TileError {
    /// The level is deeper than [`MAX_ZOOM`].
    TooDeep { z: u64 },
    /// The row is outside the level.
    RowOutside { tms: TileMatrixSet, z: u8, row: u64, rows: u64 },
    /// The column is outside the level.
    ColumnOutside { tms: TileMatrixSet, z: u8, col: u64, cols: u64 },
}

impl TileError {
    /// The OGC API – Tiles path parameter at fault.
    pub fn parameter(&self) -> &'static str {
        match self {
            TileError::TooDeep { .. } => "tileMatrix",
            TileError::RowOutside { .. } => "tileRow",
            TileError::ColumnOutside { .. } => "tileCol",
        }
    }
}

impl fmt::Display for TileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TileError::TooDeep { z } => write!(f, "zoom {z} is beyond the deepest level served, {MAX_ZOOM}"),
            TileError::RowOutside { tms, z, row, rows } => {
                write!(f, "row {row} is outside level {z} of {tms}, whose rows run 0..{}", rows - 1)
            }
            TileError::ColumnOutside { tms, z, col, cols } => {
                write!(f, "column {col} is outside level {z} of {tms}, whose columns run 0..{}", cols - 1)
            }
        }
    }
}

impl std::error::Error for TileError {}

impl TileId {
    /// The tile, when `z` is at most [`MAX_ZOOM`] and `row` and `col` are within the level.
    pub fn new(tms: TileMatrixSet, z: u64, row: u64, col: u64) -> Result<TileId, TileError> {
        if z > u64::from(MAX_ZOOM) {
            return Err(TileError::TooDeep { z });
        }
        // At most MAX_ZOOM.
        let z = z as u8;
        let (cols, rows) = tms.matrix_size(z);
        if row >= rows {
            return Err(TileError::RowOutside { tms, z, row, rows });
        }
        if col >= cols {
            return Err(TileError::ColumnOutside { tms, z, col, cols });
        }
        // Both below 2^23.
        Ok(TileId { tms, z, row: row as u32, col: col as u32 })
    }

    /// The side of the tile in units of its CRS (metres or degrees).
    pub fn side(&self) -> f64 {
        self.tms.tile_side(self.z)
    }

    /// One pixel of the tile grid ([`EXTENT`] per side) in units of its CRS.
    pub fn pixel(&self) -> f64 {
        self.side() / f64::from(EXTENT)
    }

    /// `[min_x, min_y, max_x, max_y]` of the tile in units of its CRS (for WebMercatorQuad, as
    /// `ST_TileEnvelope` gives it).
    pub fn bounds(&self) -> [f64; 4] {
        let side = self.side();
        let (origin_x, origin_y) = self.tms.point_of_origin();
        let min_x = origin_x + f64::from(self.col) * side;
        let max_y = origin_y - f64::from(self.row) * side;
        [min_x, max_y - side, min_x + side, max_y]
    }

    /// `[west, south, east, north]` of the tile grown by `margin_px` pixels of the tile grid
    /// on each side, in degrees (longitudes may pass ±180 and latitudes the grid's end where
    /// the margin leaves the world).
    pub fn bounds_lonlat(&self, margin_px: f64) -> [f64; 4] {
        let [min_x, min_y, max_x, max_y] = self.bounds();
        let m = margin_px * self.pixel();
        let (west, south) = self.tms.unproject(min_x - m, min_y - m);
        let (east, north) = self.tms.unproject(max_x + m, max_y + m);
        [west, south, east, north]
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.tms, self.z, self.row, self.col)
    }
}

/// A tile as a store encodes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedTile {
    /// The Mapbox Vector Tile; empty when no feature is in the tile.
    pub bytes: Vec<u8>,
    /// Features in the tile that thinning left out to keep it within [`TILE_BUDGET_BYTES`]
    /// (0 when it holds them all).
    pub omitted: u64,
}

/// EPSG:3857 metres to longitude and latitude in degrees.
pub fn to_lonlat(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / EARTH_RADIUS_M).to_degrees();
    let lat = (2.0 * (y / EARTH_RADIUS_M).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
    (lon, lat)
}

/// Longitude and latitude in degrees to EPSG:3857 metres. Latitudes are held within ±89.9999°
/// so that the poles stay finite (far outside every tile).
pub fn to_mercator(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-89.9999, 89.9999).to_radians();
    let x = lon.to_radians() * EARTH_RADIUS_M;
    let y = (std::f64::consts::FRAC_PI_4 + lat / 2.0).tan().ln() * EARTH_RADIUS_M;
    (x, y)
}

/// How much detail one encoding of a tile keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detail {
    /// Simplification tolerance (Douglas–Peucker), in pixels of the tile grid.
    pub simplify_px: f64,
    /// When set: at most one feature per cell of this many pixels (each filed by the corner
    /// of its box with the smallest coordinates), the one with the lowest `fid`.
    pub thin_px: Option<f64>,
}

/// The encodings tried in turn until one fits [`TILE_BUDGET_BYTES`]; the last is served
/// whatever its size.
pub const DETAILS: [Detail; 5] = [
    Detail { simplify_px: 1.0, thin_px: None },
    Detail { simplify_px: 4.0, thin_px: None },
    Detail { simplify_px: 16.0, thin_px: None },
    Detail { simplify_px: 16.0, thin_px: Some(8.0) },
    Detail { simplify_px: 64.0, thin_px: Some(64.0) },
];

#[cfg(test)]
mod tests {
    use super::*;

    const WMQ: TileMatrixSet = TileMatrixSet::WebMercatorQuad;
    const CRS84: TileMatrixSet = TileMatrixSet::WorldCrs84Quad;

    #[test]
    fn tiles_are_checked() {
        assert_eq!(TileId::new(WMQ, 0, 0, 0).unwrap(), TileId { tms: WMQ, z: 0, row: 0, col: 0 });
        assert_eq!(TileId::new(WMQ, 22, 0, (1 << 22) - 1).unwrap().col, (1 << 22) - 1);
        let too_deep = TileId::new(WMQ, 23, 0, 0).unwrap_err();
        assert!(too_deep.to_string().contains("zoom 23") && too_deep.parameter() == "tileMatrix");
        assert!(TileId::new(WMQ, 30, 0, 0).is_err());
        let col = TileId::new(WMQ, 2, 0, 4).unwrap_err();
        assert!(col.to_string().contains("0..3") && col.parameter() == "tileCol", "{col}");
        assert_eq!(TileId::new(WMQ, 2, 4, 0).unwrap_err().parameter(), "tileRow");
        assert!(TileId::new(WMQ, 0, 0, 1).is_err());
        // WorldCRS84Quad: two columns at level 0, one row.
        assert!(TileId::new(CRS84, 0, 0, 1).is_ok());
        assert_eq!(TileId::new(CRS84, 0, 1, 0).unwrap_err().parameter(), "tileRow");
        assert_eq!(TileId::new(CRS84, 0, 0, 2).unwrap_err().parameter(), "tileCol");
        assert!(TileId::new(CRS84, 22, (1 << 22) - 1, (1 << 23) - 1).is_ok());
        assert_eq!(TileMatrixSet::from_id("WorldCRS84Quad"), Some(CRS84));
        assert_eq!(TileMatrixSet::from_id("worldcrs84quad"), None);
        for tms in TileMatrixSet::ALL {
            assert_eq!(serde_json::to_value(tms).unwrap(), tms.id(), "serialised as its identifier");
        }
    }

    #[test]
    fn bounds_match_st_tile_envelope() {
        let world = TileId::new(WMQ, 0, 0, 0).unwrap().bounds();
        assert_eq!(world, [-WEB_MERCATOR_HALF_M, -WEB_MERCATOR_HALF_M, WEB_MERCATOR_HALF_M, WEB_MERCATOR_HALF_M]);
        // ST_TileEnvelope(2, 1, 1): the square west of and north of the origin.
        let t = TileId::new(WMQ, 2, 1, 1).unwrap().bounds();
        assert!((t[0] + WEB_MERCATOR_HALF_M / 2.0).abs() < 1e-6 && t[2].abs() < 1e-6, "{t:?}");
        assert!(t[1].abs() < 1e-6 && (t[3] - WEB_MERCATOR_HALF_M / 2.0).abs() < 1e-6, "{t:?}");
        let [w, s, e, n] = TileId::new(WMQ, 0, 0, 0).unwrap().bounds_lonlat(0.0);
        assert!((w + 180.0).abs() < 1e-9 && (e - 180.0).abs() < 1e-9);
        assert!((s + MAX_LATITUDE).abs() < 1e-9 && (n - MAX_LATITUDE).abs() < 1e-9, "{s} {n}");
        let [w, _, e, _] = TileId::new(WMQ, 0, 0, 0).unwrap().bounds_lonlat(f64::from(BUFFER));
        assert!(w < -180.0 && e > 180.0);
    }

    #[test]
    fn crs84_tiles_split_the_world_in_degrees() {
        assert_eq!(TileId::new(CRS84, 0, 0, 0).unwrap().bounds_lonlat(0.0), [-180.0, -90.0, 0.0, 90.0]);
        assert_eq!(TileId::new(CRS84, 0, 0, 1).unwrap().bounds_lonlat(0.0), [0.0, -90.0, 180.0, 90.0]);
        assert_eq!(TileId::new(CRS84, 2, 1, 5).unwrap().bounds_lonlat(0.0), [45.0, 0.0, 90.0, 45.0]);
        let [w, s, e, n] = TileId::new(CRS84, 1, 0, 0).unwrap().bounds_lonlat(f64::from(BUFFER));
        let margin = 90.0 / 64.0;
        assert_eq!([w, s, e, n], [-180.0 - margin, -margin, -90.0 + margin, 90.0 + margin]);
    }

    #[test]
    fn levels_follow_the_registry() {
        // The OGC registry's definitions (2D Tile Matrix Set 2.0), to their printed digits.
        let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-12;
        assert!(close(WMQ.scale_denominator(0), 559_082_264.028_717), "{}", WMQ.scale_denominator(0));
        assert!(close(WMQ.cell_size(0), 156_543.033_928_041));
        assert!(close(WMQ.cell_size(24), 0.009_330_691_929_342_8));
        assert!(close(CRS84.scale_denominator(0), 279_541_132.014_358), "{}", CRS84.scale_denominator(0));
        assert_eq!(CRS84.cell_size(0), 0.703_125);
        assert!(close(CRS84.scale_denominator(23), 33.323_899_747_652_8));
        assert_eq!(WMQ.matrix_size(3), (8, 8));
        assert_eq!(CRS84.matrix_size(3), (16, 8));
        assert_eq!(CRS84.point_of_origin(), (-180.0, 90.0));
    }

    #[test]
    fn projection_round_trips() {
        for (lon, lat) in [(0.0, 0.0), (13.4, 52.5), (-179.9, -85.0), (179.0, 60.0)] {
            let (x, y) = to_mercator(lon, lat);
            let (lon2, lat2) = to_lonlat(x, y);
            assert!((lon - lon2).abs() < 1e-9 && (lat - lat2).abs() < 1e-9, "{lon} {lat}");
        }
        let (x, y) = to_mercator(13.4, 52.5);
        assert!((x - 1_491_681.2).abs() < 0.1 && (y - 6_891_041.7).abs() < 0.1, "{x} {y}");
        assert!(to_mercator(0.0, -90.0).1.is_finite());
        assert_eq!(CRS84.project(13.4, 52.5), (13.4, 52.5));
    }
}
