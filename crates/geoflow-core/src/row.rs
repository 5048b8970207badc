//! What the core hands to a store: encoded rows, their measures, and per-source reports.

use serde::{Deserialize, Serialize};

use crate::value::PropValue;

/// Axis-aligned extent in degrees (WGS84 lon/lat).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bbox {
    pub min_x: f64,
    pub min_y: f64,
    pub max_x: f64,
    pub max_y: f64,
}

impl Bbox {
    pub fn of_point(x: f64, y: f64) -> Bbox {
        Bbox { min_x: x, min_y: y, max_x: x, max_y: y }
    }

    pub fn expand(&mut self, x: f64, y: f64) {
        self.min_x = self.min_x.min(x);
        self.min_y = self.min_y.min(y);
        self.max_x = self.max_x.max(x);
        self.max_y = self.max_y.max(y);
    }

    pub fn union(self, other: Bbox) -> Bbox {
        Bbox {
            min_x: self.min_x.min(other.min_x),
            min_y: self.min_y.min(other.min_y),
            max_x: self.max_x.max(other.max_x),
            max_y: self.max_y.max(other.max_y),
        }
    }

    /// Union of two optional extents.
    pub fn merge(a: Option<Bbox>, b: Option<Bbox>) -> Option<Bbox> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.union(b)),
            (a, b) => a.or(b),
        }
    }
}

/// GeoJSON geometry types, with their names as RFC 7946 spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GeometryKind {
    Point,
    LineString,
    Polygon,
    MultiPoint,
    MultiLineString,
    MultiPolygon,
    GeometryCollection,
}

impl GeometryKind {
    pub fn from_name(name: &str) -> Option<GeometryKind> {
        Some(match name {
            "Point" => GeometryKind::Point,
            "LineString" => GeometryKind::LineString,
            "Polygon" => GeometryKind::Polygon,
            "MultiPoint" => GeometryKind::MultiPoint,
            "MultiLineString" => GeometryKind::MultiLineString,
            "MultiPolygon" => GeometryKind::MultiPolygon,
            "GeometryCollection" => GeometryKind::GeometryCollection,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            GeometryKind::Point => "Point",
            GeometryKind::LineString => "LineString",
            GeometryKind::Polygon => "Polygon",
            GeometryKind::MultiPoint => "MultiPoint",
            GeometryKind::MultiLineString => "MultiLineString",
            GeometryKind::MultiPolygon => "MultiPolygon",
            GeometryKind::GeometryCollection => "GeometryCollection",
        }
    }

    /// The WKB / OGC type code (without Z).
    pub fn wkb_code(self) -> u32 {
        match self {
            GeometryKind::Point => 1,
            GeometryKind::LineString => 2,
            GeometryKind::Polygon => 3,
            GeometryKind::MultiPoint => 4,
            GeometryKind::MultiLineString => 5,
            GeometryKind::MultiPolygon => 6,
            GeometryKind::GeometryCollection => 7,
        }
    }

    /// The kind of a WKB / OGC type code (without Z or M); `None` for any other code.
    pub fn from_wkb_code(code: u32) -> Option<GeometryKind> {
        Some(match code {
            1 => GeometryKind::Point,
            2 => GeometryKind::LineString,
            3 => GeometryKind::Polygon,
            4 => GeometryKind::MultiPoint,
            5 => GeometryKind::MultiLineString,
            6 => GeometryKind::MultiPolygon,
            7 => GeometryKind::GeometryCollection,
            _ => return None,
        })
    }
}

/// A geometry encoded as ISO WKB (little-endian; Z types are `code + 1000`), SRID 4326.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedGeometry {
    pub kind: GeometryKind,
    pub has_z: bool,
    /// `None` for an empty geometry.
    pub bbox: Option<Bbox>,
    pub wkb: Vec<u8>,
}

/// Measures derived from a feature's geometry, stored beside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    /// Geodesic area on the WGS84 ellipsoid, square metres (areal geometries only).
    pub area_m2: Option<f64>,
    /// Geodesic length on the WGS84 ellipsoid, metres (lineal geometries only).
    pub length_m: Option<f64>,
    /// Number of positions.
    pub vertices: u32,
}

/// One feature ready to store. `properties` pairs a field index of the source's
/// [`crate::schema::Schema`] with the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 0-based position of the feature in its source.
    pub index: u64,
    pub id: PropValue,
    pub geometry: Option<EncodedGeometry>,
    pub measures: Measures,
    pub properties: Vec<(usize, PropValue)>,
}
