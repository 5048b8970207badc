//! Coordinate reference systems: how positions are brought to RFC 7946 WGS84 lon/lat.
//!
//! WGS84 and Web Mercator are handled here, inline with coordinate parsing. Any other CRS is
//! resolved by a [`CrsResolver`] (the application's is backed by PROJ) into a [`Reproject`]
//! that transforms positions after they are read and before they are checked: coordinates are
//! never stored under the wrong CRS.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::geometry::{Geom, Pos};
use crate::report::{Problem, ProblemCode};

/// Transforms positions from one source CRS to WGS84 longitude/latitude.
pub trait Reproject: Send + Sync + fmt::Debug {
    /// The source CRS as reports name it, e.g. `EPSG:27700 (OSGB36 / British National Grid)`.
    fn name(&self) -> &str;
    /// Transforms `positions` in place: x and y in the source CRS's east/north (or lon/lat)
    /// order become longitude and latitude in degrees; z is kept. The error says which
    /// position could not be transformed and why.
    fn to_wgs84(&self, positions: &mut [Pos]) -> Result<(), String>;
    /// What a load report should say about the transformation (a less accurate one used
    /// because a grid is missing, say).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Turns a CRS name (`EPSG:27700`, a URN, WKT, PROJJSON) into a transform.
pub trait CrsResolver: Send + Sync + fmt::Debug {
    /// An unknown or unusable CRS is a [`ProblemCode::UnsupportedCrs`] naming it.
    fn resolve(&self, name: &str) -> Result<CrsTransform, Problem>;
}

/// The resolver that knows only what this module transforms itself: WGS84 and Web Mercator.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinCrs;

impl CrsResolver for BuiltinCrs {
    fn resolve(&self, name: &str) -> Result<CrsTransform, Problem> {
        crs_by_name(name).ok_or_else(|| unsupported(&format!("{name:?}")))
    }
}

/// How to bring positions to RFC 7946 WGS84 longitude/latitude.
#[derive(Debug, Clone, Default)]
pub enum CrsTransform {
    /// Already WGS84 lon/lat (no `crs`, CRS84, or EPSG:4326 in the lon/lat order GeoJSON uses).
    #[default]
    Identity,
    /// Spherical (Web) Mercator metres: EPSG:3857 and its aliases.
    WebMercator,
    /// Any other CRS, through a [`Reproject`].
    Reproject(Arc<dyn Reproject>),
}

impl PartialEq for CrsTransform {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CrsTransform::Identity, CrsTransform::Identity) => true,
            (CrsTransform::WebMercator, CrsTransform::WebMercator) => true,
            (CrsTransform::Reproject(a), CrsTransform::Reproject(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

const EARTH_RADIUS_M: f64 = 6_378_137.0;

impl CrsTransform {
    /// How reports name the source CRS (`None` for WGS84 lon/lat).
    pub fn source_name(&self) -> Option<String> {
        match self {
            CrsTransform::Identity => None,
            CrsTransform::WebMercator => Some("EPSG:3857 (WGS 84 / Pseudo-Mercator)".to_string()),
            CrsTransform::Reproject(r) => Some(r.name().to_string()),
        }
    }

    /// Brings every position of `geom` to WGS84 lon/lat.
    pub fn apply_to(&self, geom: &mut Geom) -> Result<(), Problem> {
        match self {
            CrsTransform::Identity => Ok(()),
            CrsTransform::WebMercator => {
                geom.for_each_pos_mut(&mut |pos| (pos.x, pos.y) = web_mercator_to_wgs84(pos.x, pos.y));
                Ok(())
            }
            CrsTransform::Reproject(r) => {
                let mut result = Ok(());
                geom.for_each_slice_mut(&mut |positions| {
                    if result.is_ok() {
                        result = r.to_wgs84(positions);
                    }
                });
                result.map_err(|why| {
                    Problem::new(ProblemCode::CrsTransform, format!("coordinates in {} {why}", r.name()))
                })
            }
        }
    }
}

/// Spherical Mercator metres to degrees.
#[inline]
pub fn web_mercator_to_wgs84(x: f64, y: f64) -> (f64, f64) {
    let lon = (x / EARTH_RADIUS_M).to_degrees();
    let lat = (2.0 * (y / EARTH_RADIUS_M).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
    // `+ 0.0` turns -0 into 0, as the coordinate parser does.
    (lon + 0.0, lat + 0.0)
}

fn unsupported(what: &str) -> Problem {
    Problem::new(
        ProblemCode::UnsupportedCrs,
        format!("crs {what} is not WGS84 and cannot be transformed: reproject to EPSG:4326 (RFC 7946) first"),
    )
}

#[derive(Deserialize)]
struct LegacyCrs<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CrsProperties {
    name: Option<String>,
    code: Option<serde_json::Value>,
}

/// The CRS a legacy `crs` member names (`None` for `null`).
pub fn legacy_crs_name(raw: &str) -> Result<Option<String>, Problem> {
    if raw.trim() == "null" {
        return Ok(None);
    }
    let crs: LegacyCrs = serde_json::from_str(raw).map_err(|_| unsupported(&format!("member {}", clip(raw))))?;
    let props: Option<CrsProperties> = crs.properties.and_then(|p| serde_json::from_str(p.get()).ok());
    match (crs.kind.as_deref(), props) {
        (Some("name"), Some(CrsProperties { name: Some(name), .. })) => Ok(Some(name)),
        (Some("EPSG"), Some(CrsProperties { code: Some(code), .. })) => Ok(Some(format!("EPSG:{code}"))),
        _ => Err(unsupported(&clip(raw))),
    }
}

/// Interprets the raw JSON of a `crs` member with `resolver`.
pub fn parse_crs(raw: &str, resolver: &dyn CrsResolver) -> Result<CrsTransform, Problem> {
    match legacy_crs_name(raw)? {
        None => Ok(CrsTransform::Identity),
        Some(name) => resolver.resolve(&name),
    }
}

/// Recognises the spellings of CRS84/EPSG:4326 and Web Mercator found in the wild.
pub fn crs_by_name(name: &str) -> Option<CrsTransform> {
    let n = name.trim().to_ascii_lowercase();
    if n.ends_with("crs84") {
        return Some(CrsTransform::Identity);
    }
    let code = n.rsplit([':', '/']).next().unwrap_or("");
    let authority_ok = n.contains("epsg") || n.contains("esri");
    match code {
        "4326" if n.contains("epsg") => Some(CrsTransform::Identity),
        "3857" | "900913" | "3785" | "102100" | "102113" if authority_ok || code == "900913" => {
            Some(CrsTransform::WebMercator)
        }
        _ => None,
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(crs_by_name("urn:ogc:def:crs:OGC:1.3:CRS84"), Some(CrsTransform::Identity));
        assert_eq!(crs_by_name("EPSG:4326"), Some(CrsTransform::Identity));
        assert_eq!(crs_by_name("urn:ogc:def:crs:EPSG::4326"), Some(CrsTransform::Identity));
        assert_eq!(crs_by_name("http://www.opengis.net/def/crs/EPSG/0/3857"), Some(CrsTransform::WebMercator));
        assert_eq!(crs_by_name("urn:ogc:def:crs:EPSG::27700"), None);
    }

    #[test]
    fn members() {
        let wm = r#"{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3857"}}"#;
        assert_eq!(parse_crs(wm, &BuiltinCrs), Ok(CrsTransform::WebMercator));
        assert_eq!(parse_crs(r#"{"type":"EPSG","properties":{"code":4326}}"#, &BuiltinCrs), Ok(CrsTransform::Identity));
        let err = parse_crs(r#"{"type":"name","properties":{"name":"EPSG:2056"}}"#, &BuiltinCrs).unwrap_err();
        assert_eq!(err.code, ProblemCode::UnsupportedCrs);
        assert!(err.message.contains("EPSG:2056"), "{}", err.message);
        assert!(parse_crs(r#"{"type":"link","properties":{"href":"x"}}"#, &BuiltinCrs).is_err());
    }

    #[test]
    fn web_mercator_inverse() {
        let (lon, lat) = web_mercator_to_wgs84(1491681.2, 6891041.7);
        assert!((lon - 13.4).abs() < 1e-5 && (lat - 52.5).abs() < 1e-5, "{lon} {lat}");
    }
}
