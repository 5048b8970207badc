//! The CRSs features are served in (OGC API – Features Part 2): CRS84 as stored, EPSG:4326,
//! Web Mercator, every WGS 84 UTM zone and the EPSG codes the configuration adds. Every
//! collection lists the same ones.
//!
//! Each CRS is read from PROJ's database the first time a request names it, and kept.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use geoflow_core::served_crs::{CrsId, ServedCrs};
use geoflow_formats::crs::{served_crs, ServedCrsError};

/// The EPSG codes every deployment serves, after CRS84: WGS 84 latitude/longitude, Web
/// Mercator, and the UTM zones north (32601–32660) and south (32701–32760).
fn built_in_codes() -> impl Iterator<Item = u32> {
    [4326, 3857].into_iter().chain(32601..=32660).chain(32701..=32760)
}

/// Reads a configured CRS: an EPSG code (`2056`), `EPSG:2056`, or its URI.
pub fn parse_epsg(text: &str) -> Option<u32> {
    let text = text.trim();
    let code = text.strip_prefix("EPSG:").or_else(|| text.strip_prefix("epsg:")).unwrap_or(text);
    if !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()) {
        return code.parse::<u32>().ok().filter(|&c| c > 0);
    }
    match CrsId::parse(text) {
        Some(CrsId::Epsg(code)) => Some(code),
        _ => None,
    }
}

/// Checks that PROJ can serve each of `codes` (a configured list), before the API starts.
pub fn check_servable(codes: &[u32]) -> Result<(), ServedCrsError> {
    codes.iter().try_for_each(|&code| served_crs(code).map(drop))
}

/// The served CRSs, in the order collections list them.
#[derive(Debug)]
pub struct CrsList {
    ids: Vec<CrsId>,
    resolved: Mutex<HashMap<CrsId, ServedCrs>>,
}

/// Why a request's CRS cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CrsChoiceError {
    #[error("not a CRS URI (http://www.opengis.net/def/crs/EPSG/0/<code>, or the CRS84 one)")]
    NotAUri,
    #[error("not one of the CRSs served (the collection's crs list)")]
    NotListed,
    #[error("{0}")]
    Unusable(#[from] ServedCrsError),
}

impl CrsList {
    /// CRS84, the built-in codes, then `extra` (duplicates dropped).
    pub fn new(extra: &[u32]) -> CrsList {
        let mut ids = vec![CrsId::Crs84];
        for code in built_in_codes().chain(extra.iter().copied()) {
            if !ids.contains(&CrsId::Epsg(code)) {
                ids.push(CrsId::Epsg(code));
            }
        }
        let resolved = HashMap::from([(CrsId::Crs84, ServedCrs::crs84())]);
        CrsList { ids, resolved: Mutex::new(resolved) }
    }

    /// The URIs, CRS84 first.
    pub fn uris(&self) -> Vec<String> {
        self.ids.iter().map(|id| id.uri()).collect()
    }

    /// The EPSG codes (all but CRS84).
    pub fn epsg_codes(&self) -> Vec<u32> {
        self.ids
            .iter()
            .filter_map(|id| match id {
                CrsId::Epsg(code) => Some(*code),
                CrsId::Crs84 => None,
            })
            .collect()
    }

    /// The served CRS a request names by URI.
    pub fn choose(&self, uri: &str) -> Result<ServedCrs, CrsChoiceError> {
        let id = CrsId::parse(uri).ok_or(CrsChoiceError::NotAUri)?;
        if !self.ids.contains(&id) {
            return Err(CrsChoiceError::NotListed);
        }
        if let Some(crs) = self.resolved.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
            return Ok(crs.clone());
        }
        let CrsId::Epsg(code) = id else { return Ok(ServedCrs::crs84()) };
        // Resolved outside the lock: PROJ reads its database meanwhile.
        let crs = served_crs(code)?;
        self.resolved.lock().unwrap_or_else(PoisonError::into_inner).insert(id, crs.clone());
        Ok(crs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_starts_with_crs84_then_wgs84_then_utm() {
        let list = CrsList::new(&[2056, 4326]);
        let uris = list.uris();
        assert_eq!(uris[0], "http://www.opengis.net/def/crs/OGC/1.3/CRS84");
        assert_eq!(uris[1], "http://www.opengis.net/def/crs/EPSG/0/4326");
        assert_eq!(uris.len(), 1 + 2 + 60 + 60 + 1, "4326 is listed once");
        assert_eq!(uris.last().unwrap(), "http://www.opengis.net/def/crs/EPSG/0/2056");
        assert!(matches!(list.choose("http://www.opengis.net/def/crs/EPSG/0/27700"), Err(CrsChoiceError::NotListed)));
        assert!(matches!(list.choose("EPSG:4326"), Err(CrsChoiceError::NotAUri)));
        let utm = list.choose("http://www.opengis.net/def/crs/EPSG/0/32633").unwrap();
        assert_eq!(utm.epsg(), Some(32633));
        assert!(list.choose("[OGC:CRS84]").unwrap().is_stored_crs());
    }

    #[test]
    fn configured_codes() {
        assert_eq!(parse_epsg("2056"), Some(2056));
        assert_eq!(parse_epsg("EPSG:27700"), Some(27700));
        assert_eq!(parse_epsg("http://www.opengis.net/def/crs/EPSG/0/3035"), Some(3035));
        assert_eq!(parse_epsg("OSGB"), None);
        assert_eq!(parse_epsg("0"), None);
        assert!(check_servable(&[2056, 27700]).is_ok());
        assert!(matches!(check_servable(&[2056, 99999]), Err(ServedCrsError::Unknown { code: 99999, .. })));
    }
}
