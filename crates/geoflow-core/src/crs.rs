//! Legacy `crs` members (GeoJSON 2008): WGS84 is accepted, Web Mercator is transformed,
//! anything else is rejected — coordinates are never stored under the wrong CRS.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::report::{Problem, ProblemCode};

/// How to bring positions to RFC 7946 WGS84 longitude/latitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrsTransform {
    /// Already WGS84 lon/lat (no `crs`, CRS84, or EPSG:4326 in the lon/lat order GeoJSON uses).
    #[default]
    Identity,
    /// Spherical (Web) Mercator metres: EPSG:3857 and its aliases.
    WebMercator,
}

const EARTH_RADIUS_M: f64 = 6_378_137.0;

impl CrsTransform {
    /// Maps one (x, y) to (lon, lat) in degrees.
    #[inline]
    pub fn apply(self, x: f64, y: f64) -> (f64, f64) {
        match self {
            CrsTransform::Identity => (x, y),
            CrsTransform::WebMercator => {
                let lon = (x / EARTH_RADIUS_M).to_degrees();
                let lat = (2.0 * (y / EARTH_RADIUS_M).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
                // `+ 0.0` turns -0 into 0, as the coordinate parser does.
                (lon + 0.0, lat + 0.0)
            }
        }
    }
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

/// Interprets the raw JSON of a `crs` member.
pub fn parse_crs(raw: &str) -> Result<CrsTransform, Problem> {
    let unsupported = |what: &str| {
        Problem::new(
            ProblemCode::UnsupportedCrs,
            format!("crs {what} is not WGS84 and cannot be transformed: reproject to EPSG:4326 (RFC 7946) first"),
        )
    };
    if raw.trim() == "null" {
        return Ok(CrsTransform::Identity);
    }
    let crs: LegacyCrs = serde_json::from_str(raw).map_err(|_| unsupported(&format!("member {}", clip(raw))))?;
    let props: Option<CrsProperties> = crs.properties.and_then(|p| serde_json::from_str(p.get()).ok());
    let name = match (crs.kind.as_deref(), props) {
        (Some("name"), Some(CrsProperties { name: Some(name), .. })) => name,
        (Some("EPSG"), Some(CrsProperties { code: Some(code), .. })) => format!("EPSG:{code}"),
        _ => return Err(unsupported(&clip(raw))),
    };
    crs_by_name(&name).ok_or_else(|| unsupported(&format!("{name:?}")))
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
        assert_eq!(parse_crs(wm), Ok(CrsTransform::WebMercator));
        assert_eq!(parse_crs(r#"{"type":"EPSG","properties":{"code":4326}}"#), Ok(CrsTransform::Identity));
        let err = parse_crs(r#"{"type":"name","properties":{"name":"EPSG:2056"}}"#).unwrap_err();
        assert_eq!(err.code, ProblemCode::UnsupportedCrs);
        assert!(err.message.contains("EPSG:2056"), "{}", err.message);
        assert!(parse_crs(r#"{"type":"link","properties":{"href":"x"}}"#).is_err());
    }

    #[test]
    fn web_mercator_inverse() {
        let (lon, lat) = CrsTransform::WebMercator.apply(1491681.2, 6891041.7);
        assert!((lon - 13.4).abs() < 1e-5 && (lat - 52.5).abs() < 1e-5, "{lon} {lat}");
    }
}
