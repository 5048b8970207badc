//! Coordinates transformed by geoflow equal PROJ's as pyproj gives them on the same machine,
//! within a millimetre, for points spread over the area of use of each CRS of the list.

use std::process::Command;

use geoflow_core::crs::CrsResolver;
use geoflow_core::geometry::{Geom, Pos};
use geoflow_formats::{CrsTransform, ProjResolver};

/// UTM north and south (WGS 84, ETRS89, NAD83), national grids, state planes, geographic
/// datums, Web and World Mercator, equal-area projections and Gauss–Krüger zones.
const CRS: &[&str] = &[
    "EPSG:32601",
    "EPSG:32617",
    "EPSG:32631",
    "EPSG:32633",
    "EPSG:32660", // UTM north
    "EPSG:32701",
    "EPSG:32723",
    "EPSG:32733",
    "EPSG:32756", // UTM south
    "EPSG:25830",
    "EPSG:25832",
    "EPSG:25833", // ETRS89 / UTM
    "EPSG:26910",
    "EPSG:26918", // NAD83 / UTM
    "EPSG:3035",  // ETRS89-LAEA
    "EPSG:27700", // British National Grid
    "EPSG:2056",  // Swiss LV95
    "EPSG:2154",  // Lambert-93
    "EPSG:28992", // RD New
    "EPSG:31370", // Belgian Lambert 72
    "EPSG:3006",  // SWEREF99 TM
    "EPSG:2193",  // NZTM
    "EPSG:2263",
    "EPSG:2227",
    "EPSG:26986",
    "EPSG:32118", // NAD83 state planes (ftUS and metres)
    "EPSG:4269",
    "EPSG:4267",
    "EPSG:4258", // NAD83, NAD27, ETRS89 geographic
    "EPSG:3857",
    "EPSG:3395", // Web Mercator, World Mercator
    "EPSG:31467",
    "EPSG:31468",
    "EPSG:2398", // Gauss–Krüger zones (DHDN, Pulkovo)
    "EPSG:5070",
    "EPSG:3577", // Albers: CONUS, Australia
    "EPSG:2180",
    "EPSG:3067",
    "EPSG:2100", // Poland, Finland, Greece
];

const PYTHON: &str = "/usr/bin/python3";

fn reference() -> Option<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/crs_accuracy.py");
    let output = Command::new(PYTHON).arg(script).args(CRS).output();
    let required = std::env::var_os("GEOFLOW_REQUIRE_TOOLS").is_some();
    match output {
        Ok(out) if out.status.success() => Some(serde_json::from_slice(&out.stdout).expect("the script prints JSON")),
        Ok(out) if !required => {
            eprintln!("skipped: pyproj is not available ({})", String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        Err(e) if !required => {
            eprintln!("skipped: {PYTHON} cannot run ({e})");
            None
        }
        other => panic!("the reference coordinates could not be computed: {other:?}"),
    }
}

#[test]
fn coordinates_equal_pyproj_within_a_millimetre() {
    let Some(reference) = reference() else { return };
    let mut checked = 0;
    for entry in reference["crs"].as_array().unwrap() {
        let code = entry["crs"].as_str().unwrap();
        let transform = ProjResolver.resolve(code).unwrap_or_else(|e| panic!("{code}: {e}"));
        assert!(matches!(transform, CrsTransform::Reproject(_) | CrsTransform::WebMercator), "{code}");
        let points = entry["points"].as_array().unwrap();
        assert!(points.len() >= 20, "{code}: only {} points in its area of use", points.len());
        for p in points {
            let [x, y, lon, lat] = [0, 1, 2, 3].map(|i| p[i].as_f64().unwrap());
            let mut g = Geom::Point(Pos::xy(x, y));
            transform.apply_to(&mut g).unwrap_or_else(|e| panic!("{code} ({x}, {y}): {e}"));
            let Geom::Point(got) = g else { unreachable!() };
            // Metres on the ground: a degree of latitude is ~111.3 km; of longitude, less.
            let dy = (got.y - lat) * 111_320.0;
            let dx = (got.x - lon) * 111_320.0 * lat.to_radians().cos();
            let off = dx.hypot(dy);
            assert!(off < 1e-3, "{code} ({x}, {y}): ({}, {}) is {off} m from PROJ's ({lon}, {lat})", got.x, got.y);
            checked += 1;
        }
    }
    assert!(reference["crs"].as_array().unwrap().len() >= 30);
    eprintln!("{checked} positions in {} CRSs agree with PROJ {}", CRS.len(), reference["proj"]);
}
