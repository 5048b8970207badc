//! Mapbox Vector Tiles of a dataset on the WebMercatorQuad tile matrix set (EPSG:3857, one
//! 256-pixel tile at zoom 0, `y` counted from the north): the tile coordinates, their checks and
//! bounds, and the rules both stores follow when they encode a tile.
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
//! its size.

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

/// One tile of WebMercatorQuad: zoom `z`, column `x` (from the west), row `y` (from the
/// north).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

/// Why tile coordinates name no tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileError(String);

impl fmt::Display for TileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TileError {}

impl TileId {
    /// The tile, when `z` is at most [`MAX_ZOOM`] and `x` and `y` are below `2^z`.
    pub fn new(z: u32, x: u64, y: u64) -> Result<TileId, TileError> {
        if z > u32::from(MAX_ZOOM) {
            return Err(TileError(format!("zoom {z} is beyond the deepest level served, {MAX_ZOOM}")));
        }
        let n = 1u64 << z;
        if x >= n || y >= n {
            return Err(TileError(format!(
                "tile {x}/{y} is outside zoom {z}, whose columns and rows run 0..{}",
                n - 1
            )));
        }
        // Both below 2^22.
        Ok(TileId { z: z as u8, x: x as u32, y: y as u32 })
    }

    /// Tiles per side at this zoom.
    pub fn tiles_per_side(&self) -> u32 {
        1 << self.z
    }

    /// The side of the tile in EPSG:3857 metres.
    pub fn side_m(&self) -> f64 {
        2.0 * WEB_MERCATOR_HALF_M / f64::from(self.tiles_per_side())
    }

    /// One pixel of the tile grid ([`EXTENT`] per side) in EPSG:3857 metres.
    pub fn pixel_m(&self) -> f64 {
        self.side_m() / f64::from(EXTENT)
    }

    /// `[min_x, min_y, max_x, max_y]` of the tile in EPSG:3857 metres, as `ST_TileEnvelope`
    /// gives it.
    pub fn bounds_m(&self) -> [f64; 4] {
        let side = self.side_m();
        let min_x = -WEB_MERCATOR_HALF_M + f64::from(self.x) * side;
        let max_y = WEB_MERCATOR_HALF_M - f64::from(self.y) * side;
        [min_x, max_y - side, min_x + side, max_y]
    }

    /// `[west, south, east, north]` of the tile grown by `margin_px` pixels of the tile grid
    /// on each side, in degrees (longitudes may pass ±180 and latitudes ±[`MAX_LATITUDE`]
    /// where the margin leaves the square).
    pub fn bounds_lonlat(&self, margin_px: f64) -> [f64; 4] {
        let [min_x, min_y, max_x, max_y] = self.bounds_m();
        let m = margin_px * self.pixel_m();
        let (west, south) = to_lonlat(min_x - m, min_y - m);
        let (east, north) = to_lonlat(max_x + m, max_y + m);
        [west, south, east, north]
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
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

    #[test]
    fn tiles_are_checked() {
        assert_eq!(TileId::new(0, 0, 0).unwrap(), TileId { z: 0, x: 0, y: 0 });
        assert_eq!(TileId::new(22, (1 << 22) - 1, 0).unwrap().x, (1 << 22) - 1);
        assert!(TileId::new(23, 0, 0).unwrap_err().to_string().contains("zoom 23"));
        assert!(TileId::new(30, 0, 0).is_err());
        assert!(TileId::new(2, 4, 0).unwrap_err().to_string().contains("0..3"));
        assert!(TileId::new(2, 0, 4).is_err());
        assert!(TileId::new(0, 1, 0).is_err());
    }

    #[test]
    fn bounds_match_st_tile_envelope() {
        let world = TileId::new(0, 0, 0).unwrap().bounds_m();
        assert_eq!(world, [-WEB_MERCATOR_HALF_M, -WEB_MERCATOR_HALF_M, WEB_MERCATOR_HALF_M, WEB_MERCATOR_HALF_M]);
        // ST_TileEnvelope(2, 1, 1): the square west of and north of the origin.
        let t = TileId::new(2, 1, 1).unwrap().bounds_m();
        assert!((t[0] + WEB_MERCATOR_HALF_M / 2.0).abs() < 1e-6 && t[2].abs() < 1e-6, "{t:?}");
        assert!(t[1].abs() < 1e-6 && (t[3] - WEB_MERCATOR_HALF_M / 2.0).abs() < 1e-6, "{t:?}");
        let [w, s, e, n] = TileId::new(0, 0, 0).unwrap().bounds_lonlat(0.0);
        assert!((w + 180.0).abs() < 1e-9 && (e - 180.0).abs() < 1e-9);
        assert!((s + MAX_LATITUDE).abs() < 1e-9 && (n - MAX_LATITUDE).abs() < 1e-9, "{s} {n}");
        let [w, _, e, _] = TileId::new(0, 0, 0).unwrap().bounds_lonlat(f64::from(BUFFER));
        assert!(w < -180.0 && e > 180.0);
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
    }
}
