//! The coordinate reference systems features are served in (OGC API – Features Part 2): how a
//! CRS is named in a request, and how positions stored in WGS84 longitude/latitude go to it
//! and come back from it, in the axis order its authority defines.
//!
//! The transformation itself is PROJ's (the application's [`Projection`] is backed by it);
//! what is decided here, once for every store, is the axis order and how many decimals a
//! coordinate keeps.

use std::fmt;
use std::sync::Arc;

use crate::geometry::Pos;
use crate::row::Bbox;

/// The URI of WGS84 longitude/latitude, the CRS features are stored in.
pub const CRS84_URI: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// The URIs of EPSG CRSs start with this, the code follows.
const EPSG_URI_PREFIX: &str = "http://www.opengis.net/def/crs/EPSG/0/";

/// Decimals kept in coordinates of a linear unit (metres, feet): a tenth of a millimetre.
/// Degrees keep every digit, as stored.
pub const LINEAR_DECIMALS: u8 = 4;

/// Points per edge when a box is transformed: the edges of a box in one CRS are curves in
/// another, so its corners alone may miss part of it.
const EDGE_POINTS: usize = 21;

/// A CRS as requests name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrsId {
    /// WGS84 longitude/latitude.
    Crs84,
    /// An EPSG code.
    Epsg(u32),
}

impl CrsId {
    /// Reads a CRS URI (`http://www.opengis.net/def/crs/EPSG/0/32633`, the CRS84 one) or a
    /// safe CURIE (`[EPSG:32633]`, `[OGC:CRS84]`). `None` for anything else.
    pub fn parse(text: &str) -> Option<CrsId> {
        let text = text.trim();
        if text == CRS84_URI || text.eq_ignore_ascii_case("[OGC:CRS84]") {
            return Some(CrsId::Crs84);
        }
        let code = text.strip_prefix(EPSG_URI_PREFIX).or_else(|| {
            let curie = text.strip_prefix('[')?.strip_suffix(']')?;
            curie.get(..5).filter(|p| p.eq_ignore_ascii_case("EPSG:")).map(|_| &curie[5..])
        })?;
        // Digits only: `+7` or ` 7` is not how a code reads.
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        code.parse().ok().filter(|&c| c > 0).map(CrsId::Epsg)
    }

    /// The CRS's URI, as responses name it.
    pub fn uri(self) -> String {
        match self {
            CrsId::Crs84 => CRS84_URI.to_string(),
            CrsId::Epsg(code) => format!("{EPSG_URI_PREFIX}{code}"),
        }
    }
}

/// Transforms positions between WGS84 longitude/latitude and one other CRS, its x and y in
/// east/north order (longitude first for a geographic CRS), z kept.
pub trait Projection: Send + Sync + fmt::Debug {
    /// From WGS84 longitude/latitude to the CRS. The error says which position could not be
    /// transformed and why.
    fn wgs84_to_crs(&self, positions: &mut [Pos]) -> Result<(), String>;
    /// From the CRS to WGS84 longitude/latitude.
    fn to_wgs84(&self, positions: &mut [Pos]) -> Result<(), String>;
}

/// The unit of a CRS's coordinates, which decides how many decimals they keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrsUnit {
    Degrees,
    /// Metres, feet: coordinates are rounded to [`LINEAR_DECIMALS`].
    Linear,
}

/// A CRS features can be served in.
#[derive(Clone)]
pub struct ServedCrs {
    id: CrsId,
    /// The authority lists the northing (latitude) axis first: EPSG:4326, say.
    north_first: bool,
    unit: CrsUnit,
    /// `None` when the CRS is WGS84 longitude/latitude up to axis order.
    projection: Option<Arc<dyn Projection>>,
}

impl ServedCrs {
    /// WGS84 longitude/latitude, as stored.
    pub fn crs84() -> ServedCrs {
        ServedCrs { id: CrsId::Crs84, north_first: false, unit: CrsUnit::Degrees, projection: None }
    }

    pub fn new(id: CrsId, north_first: bool, unit: CrsUnit, projection: Option<Arc<dyn Projection>>) -> ServedCrs {
        ServedCrs { id, north_first, unit, projection }
    }

    pub fn id(&self) -> CrsId {
        self.id
    }

    pub fn uri(&self) -> String {
        self.id.uri()
    }

    /// The EPSG code; `None` for CRS84.
    pub fn epsg(&self) -> Option<u32> {
        match self.id {
            CrsId::Epsg(code) => Some(code),
            CrsId::Crs84 => None,
        }
    }

    /// Whether x and y are swapped after projecting (the authority lists north first).
    pub fn north_first(&self) -> bool {
        self.north_first
    }

    /// How many decimals a coordinate keeps; `None` for every digit.
    pub fn decimals(&self) -> Option<u8> {
        match self.unit {
            CrsUnit::Degrees => None,
            CrsUnit::Linear => Some(LINEAR_DECIMALS),
        }
    }

    /// Whether positions need a transformation (not only an axis swap) to reach this CRS.
    pub fn projects(&self) -> bool {
        self.projection.is_some()
    }

    /// Whether stored positions are served unchanged.
    pub fn is_stored_crs(&self) -> bool {
        !self.projects() && !self.north_first && self.decimals().is_none()
    }

    /// Brings positions stored in WGS84 longitude/latitude to this CRS, in its authority's
    /// axis order, rounded to its decimals.
    pub fn wgs84_to_crs(&self, positions: &mut [Pos]) -> Result<(), String> {
        if let Some(p) = &self.projection {
            p.wgs84_to_crs(positions)?;
        }
        let scale = self.decimals().map(|d| 10f64.powi(i32::from(d)));
        for pos in positions.iter_mut() {
            if self.north_first {
                (pos.x, pos.y) = (pos.y, pos.x);
            }
            if let Some(scale) = scale {
                // `+ 0.0` turns -0 into 0, as the coordinate parser does.
                (pos.x, pos.y) = ((pos.x * scale).round() / scale + 0.0, (pos.y * scale).round() / scale + 0.0);
            }
        }
        Ok(())
    }

    /// Brings positions in this CRS (its authority's axis order) to WGS84 longitude/latitude.
    pub fn to_wgs84(&self, positions: &mut [Pos]) -> Result<(), String> {
        if self.north_first {
            for pos in positions.iter_mut() {
                (pos.x, pos.y) = (pos.y, pos.x);
            }
        }
        match &self.projection {
            Some(p) => p.to_wgs84(positions),
            None => Ok(()),
        }
    }

    /// The longitude/latitude box that covers `[min_1, min_2, max_1, max_2]` given in this
    /// CRS's axis order: every edge is densified before it is transformed, a pole inside the
    /// box takes in every longitude, and a box across the antimeridian comes back with
    /// `min_x > max_x`. Boxes in a geographic CRS (lower corner first) may cross the
    /// antimeridian as CRS84's do.
    pub fn bbox_to_wgs84(&self, corners: [f64; 4]) -> Result<Bbox, String> {
        let mut lower = Pos::xy(corners[0], corners[1]);
        let mut upper = Pos::xy(corners[2], corners[3]);
        if self.north_first {
            (lower.x, lower.y, upper.x, upper.y) = (lower.y, lower.x, upper.y, upper.x);
        }
        if lower.y > upper.y || (self.unit == CrsUnit::Linear && lower.x > upper.x) {
            return Err("the lower corner must come first".into());
        }
        let Some(projection) = &self.projection else {
            return Ok(Bbox { min_x: lower.x, min_y: lower.y, max_x: upper.x, max_y: upper.y });
        };
        let mut edge = Vec::with_capacity(4 * EDGE_POINTS);
        for i in 0..EDGE_POINTS {
            let t = i as f64 / (EDGE_POINTS - 1) as f64;
            let x = lower.x + (upper.x - lower.x) * t;
            let y = lower.y + (upper.y - lower.y) * t;
            edge.extend([Pos::xy(x, lower.y), Pos::xy(x, upper.y), Pos::xy(lower.x, y), Pos::xy(upper.x, y)]);
        }
        projection.to_wgs84(&mut edge)?;
        let mut lon_lat = covering_box(&edge);
        for pole in [90.0, -90.0] {
            let mut at = [Pos::xy(0.0, pole)];
            let inside = projection.wgs84_to_crs(&mut at).is_ok()
                && (lower.x..=upper.x).contains(&at[0].x)
                && (lower.y..=upper.y).contains(&at[0].y);
            if inside {
                lon_lat = Bbox { min_x: -180.0, max_x: 180.0, ..lon_lat };
                lon_lat.expand(0.0, pole);
            }
        }
        Ok(lon_lat)
    }
}

/// The smallest box holding `positions` (longitude/latitude), across the antimeridian
/// (`min_x > max_x`) when that one is narrower.
fn covering_box(positions: &[Pos]) -> Bbox {
    let mut plain = Bbox::of_point(positions[0].x, positions[0].y);
    let east = |lon: f64| if lon < 0.0 { lon + 360.0 } else { lon };
    let mut shifted = Bbox::of_point(east(positions[0].x), positions[0].y);
    for p in positions {
        plain.expand(p.x, p.y);
        shifted.expand(east(p.x), p.y);
    }
    if shifted.max_x - shifted.min_x < plain.max_x - plain.min_x {
        let wrap = |lon: f64| if lon > 180.0 { lon - 360.0 } else { lon };
        return Bbox { min_x: wrap(shifted.min_x), max_x: wrap(shifted.max_x), ..plain };
    }
    plain
}

impl PartialEq for ServedCrs {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl fmt::Debug for ServedCrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedCrs")
            .field("id", &self.id)
            .field("north_first", &self.north_first)
            .field("unit", &self.unit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(CrsId::parse(CRS84_URI), Some(CrsId::Crs84));
        assert_eq!(CrsId::parse("[OGC:CRS84]"), Some(CrsId::Crs84));
        assert_eq!(CrsId::parse("http://www.opengis.net/def/crs/EPSG/0/32633"), Some(CrsId::Epsg(32633)));
        assert_eq!(CrsId::parse("[EPSG:4326]"), Some(CrsId::Epsg(4326)));
        for bad in [
            "EPSG:4326",
            "http://www.opengis.net/def/crs/EPSG/0/+7",
            "http://www.opengis.net/def/crs/EPSG/0/",
            "[EPSG:0]",
            "x",
        ] {
            assert_eq!(CrsId::parse(bad), None, "{bad}");
        }
        assert_eq!(CrsId::Epsg(3857).uri(), "http://www.opengis.net/def/crs/EPSG/0/3857");
    }

    /// Spherical Mercator on a unit sphere, enough to see boxes and rounding at work.
    #[derive(Debug)]
    struct Mercator;

    impl Projection for Mercator {
        fn wgs84_to_crs(&self, positions: &mut [Pos]) -> Result<(), String> {
            for p in positions {
                if p.y.abs() >= 90.0 {
                    return Err("a pole".into());
                }
                (p.x, p.y) = (p.x.to_radians(), p.y.to_radians().tan().asinh());
            }
            Ok(())
        }
        fn to_wgs84(&self, positions: &mut [Pos]) -> Result<(), String> {
            for p in positions {
                let lon = (p.x.to_degrees() + 180.0).rem_euclid(360.0) - 180.0;
                (p.x, p.y) = (lon, p.y.sinh().atan().to_degrees());
            }
            Ok(())
        }
    }

    #[test]
    fn axis_order_and_decimals() {
        let lat_lon = ServedCrs::new(CrsId::Epsg(4326), true, CrsUnit::Degrees, None);
        let mut p = [Pos::xy(12.123456789012345, 55.5)];
        lat_lon.wgs84_to_crs(&mut p).unwrap();
        assert_eq!((p[0].x, p[0].y), (55.5, 12.123456789012345));
        lat_lon.to_wgs84(&mut p).unwrap();
        assert_eq!((p[0].x, p[0].y), (12.123456789012345, 55.5));
        let metres = ServedCrs::new(CrsId::Epsg(1), false, CrsUnit::Linear, Some(Arc::new(Mercator)));
        let mut p = [Pos::xy(10.0, 0.0)];
        metres.wgs84_to_crs(&mut p).unwrap();
        assert_eq!((p[0].x, p[0].y), (0.1745, 0.0));
        assert!(ServedCrs::crs84().is_stored_crs() && !lat_lon.is_stored_crs());
    }

    #[test]
    fn boxes_are_densified_and_may_cross_the_antimeridian() {
        let lat_lon = ServedCrs::new(CrsId::Epsg(4326), true, CrsUnit::Degrees, None);
        assert_eq!(
            lat_lon.bbox_to_wgs84([40.0, -10.0, 50.0, 5.0]).unwrap(),
            Bbox { min_x: -10.0, min_y: 40.0, max_x: 5.0, max_y: 50.0 }
        );
        assert!(lat_lon.bbox_to_wgs84([50.0, 0.0, 40.0, 1.0]).is_err());
        let mercator = ServedCrs::new(CrsId::Epsg(1), false, CrsUnit::Linear, Some(Arc::new(Mercator)));
        let b = mercator.bbox_to_wgs84([-0.1, -1.0, 0.1, 1.0]).unwrap();
        assert!((b.max_y - 49.6).abs() < 0.1 && (b.max_x - 5.73).abs() < 0.01, "{b:?}");
        assert!(mercator.bbox_to_wgs84([0.1, 0.0, -0.1, 1.0]).is_err());
        // From 170°E to 170°W.
        let across = mercator.bbox_to_wgs84([170f64.to_radians(), 0.0, 190f64.to_radians(), 0.1]).unwrap();
        assert!((across.min_x - 170.0).abs() < 1e-9 && (across.max_x + 170.0).abs() < 1e-9, "{across:?}");
    }
}
