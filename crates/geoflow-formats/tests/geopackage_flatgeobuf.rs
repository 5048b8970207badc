//! GeoPackage and FlatGeobuf: files GDAL writes read back to what the GeoJSON they were made
//! from says, layers picked by name, and broken files ending in clear errors, never a panic.
//!
//! The files are made with `ogr2ogr`; without it the tests print why and pass, unless
//! `GEOFLOW_REQUIRE_TOOLS=1`. The Natural Earth round trips read the GeoJSON files under
//! `$GEOFLOW_SHARED_DIR/data/naturalearth` (default `../shared` beside the repository), skipped when absent
//! unless `GEOFLOW_REQUIRE_SHARED=1`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use geoflow_core::feature::{parse_feature, Parts};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::report::{Problem, ProblemCode};
use geoflow_core::value::PropValue;
use geoflow_formats::{ReadError, ReadOptions, SourceInfo};
use proptest::prelude::*;

/// One feature as the pipeline would see it: geometry in WGS84.
#[derive(Debug, Clone)]
struct Feature {
    id: PropValue,
    geometry: Option<Geom>,
    properties: BTreeMap<String, PropValue>,
    problems: Vec<Problem>,
}

fn read(path: &Path, options: &ReadOptions) -> Result<(Vec<Feature>, SourceInfo), ReadError> {
    let mut file = File::open(path)?;
    let mut source = geoflow_formats::open(&mut file, path, options)?;
    let mut features = Vec::new();
    for (position, raw) in (&mut source).enumerate() {
        let raw = raw?;
        assert_eq!(raw.index, position as u64, "features are numbered by their position");
        let feature = match raw.decoded {
            Some(decoded) => {
                let mut problems = decoded.problems;
                let mut geometry = decoded.geometry;
                if let Some(g) = geometry.as_mut() {
                    if let Err(problem) = raw.transform.apply_to(g) {
                        problems.push(problem);
                    }
                }
                Feature { id: decoded.id, geometry, properties: decoded.properties.into_iter().collect(), problems }
            }
            None => {
                let mut properties = BTreeMap::new();
                let parsed = parse_feature(&raw.bytes, &raw.transform, Parts::All, |k, v| {
                    properties.insert(k.to_string(), v);
                });
                Feature { id: parsed.id, geometry: parsed.geometry, properties, problems: parsed.problems }
            }
        };
        features.push(feature);
    }
    let info = source.info();
    Ok((features, info))
}

fn read_ok(path: &Path, options: &ReadOptions) -> (Vec<Feature>, SourceInfo) {
    read(path, options).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn require(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1" || v == "true")
}

/// Whether `ogr2ogr` runs; without it the test is skipped (or fails when tools are required).
fn have_ogr2ogr() -> bool {
    let ok = Command::new("ogr2ogr").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!require("GEOFLOW_REQUIRE_TOOLS"), "GEOFLOW_REQUIRE_TOOLS=1 but ogr2ogr does not run");
        eprintln!("skipped: ogr2ogr (GDAL) is not installed");
    }
    ok
}

fn ogr2ogr(args: &[&str]) {
    let out = Command::new("ogr2ogr").args(args).output().expect("ogr2ogr runs");
    assert!(out.status.success(), "ogr2ogr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn natural_earth() -> Vec<PathBuf> {
    let shared = std::env::var_os("GEOFLOW_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("data/naturalearth");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        assert!(!require("GEOFLOW_REQUIRE_SHARED"), "GEOFLOW_REQUIRE_SHARED=1 but {} has no GeoJSON", dir.display());
        eprintln!("skipped: no Natural Earth GeoJSON under {}", dir.display());
    }
    files
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Whether a value the GeoJSON gave came back as the format holds it. GDAL gives each column
/// one type, so integers in a column that also holds fractions come back as reals, and
/// numbers in a column that also holds text come back as text; nested objects and arrays are
/// kept as JSON text (spaced as GDAL writes it); a FlatGeobuf date column is a date-time, and
/// GDAL writes date-times with milliseconds.
fn same_value(json: &PropValue, ours: &PropValue) -> bool {
    use PropValue::*;
    match (json, ours) {
        (a, b) if a == b => true,
        (Int(i), Real(r)) => *i as f64 == *r,
        // Numbers with more digits than a double keeps: GDAL reads them as the nearest double.
        (Json(n), Real(r)) => n.parse::<f64>() == Ok(*r),
        (Int(i), Text(t)) => t.trim() == i.to_string(),
        (Real(r), Text(t)) => t.trim().parse::<f64>() == Ok(*r),
        (Json(a), Text(b) | Json(b)) => {
            serde_json::from_str::<serde_json::Value>(a).ok() == serde_json::from_str::<serde_json::Value>(b).ok()
        }
        (Text(a), Text(b)) => same_time(a, b),
        _ => false,
    }
}

/// `2024-05-01` and `2024-05-01T00:00:00`, `…T12:00:00Z` and `…T12:00:00.000Z`.
fn same_time(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim_end_matches('Z').trim_end_matches("+00:00").replace(".000", "");
        s.strip_suffix("T00:00:00").map(str::to_string).unwrap_or(s)
    };
    a.len() >= 10 && a.as_bytes()[4] == b'-' && norm(a) == norm(b)
}

fn near(a: &Pos, b: &Pos, tolerance: f64) -> bool {
    (a.x - b.x).abs() <= tolerance
        && (a.y - b.y).abs() <= tolerance
        && (a.z.is_nan() && b.z.is_nan() || (a.z - b.z).abs() <= 1e-6)
}

fn same_geometry(a: &Geom, b: &Geom, tolerance: f64) -> bool {
    let lines = |a: &[Vec<Pos>], b: &[Vec<Pos>]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(p, q)| near(p, q, tolerance)))
    };
    match (a, b) {
        (Geom::Point(p), Geom::Point(q)) => near(p, q, tolerance),
        (Geom::MultiPoint(p), Geom::MultiPoint(q)) | (Geom::LineString(p), Geom::LineString(q)) => {
            lines(std::slice::from_ref(p), std::slice::from_ref(q))
        }
        (Geom::MultiLineString(p), Geom::MultiLineString(q)) | (Geom::Polygon(p), Geom::Polygon(q)) => lines(p, q),
        (Geom::MultiPolygon(p), Geom::MultiPolygon(q)) => {
            p.len() == q.len() && p.iter().zip(q).all(|(p, q)| lines(p, q))
        }
        (Geom::GeometryCollection(p), Geom::GeometryCollection(q)) => {
            p.len() == q.len() && p.iter().zip(q).all(|(p, q)| same_geometry(p, q, tolerance))
        }
        _ => false,
    }
}

/// Compares features read from the GeoJSON with those read from its copy.
fn assert_same(what: &str, geojson: &[Feature], ours: &[Feature], tolerance: f64) {
    assert_eq!(geojson.len(), ours.len(), "{what}: feature count");
    for (i, (want, got)) in geojson.iter().zip(ours).enumerate() {
        assert!(got.problems.is_empty(), "{what} #{i}: {:?}", got.problems);
        for key in want.properties.keys().chain(got.properties.keys()) {
            let (w, g) = (want.properties.get(key).unwrap_or(&PropValue::Null), got.properties.get(key));
            let g = g.unwrap_or_else(|| panic!("{what} #{i}: no property {key:?} in {:?}", got.properties.keys()));
            assert!(same_value(w, g), "{what} #{i}: property {key:?}: GeoJSON {w:?}, read {g:?}");
        }
        match (&want.geometry, &got.geometry) {
            (None, None) => {}
            (Some(w), Some(g)) => assert!(same_geometry(w, g, tolerance), "{what} #{i}: {w:?}\n!=\n{g:?}"),
            (w, g) => panic!("{what} #{i}: geometry {w:?} read as {g:?}"),
        }
    }
}

/// An order of features that does not depend on the file's: the first position (to 1e-7°),
/// the position count and the property values.
fn order_key(f: &Feature) -> (Vec<i64>, usize, String) {
    let mut first = Vec::new();
    let mut count = 0;
    if let Some(g) = &f.geometry {
        g.for_each_pos(&mut |p| {
            if first.is_empty() {
                first = vec![(p.x * 1e7).round() as i64, (p.y * 1e7).round() as i64];
            }
            count += 1;
        });
    }
    // Numbers as doubles: a column's type may differ between the formats, not its values.
    let values = f.properties.values().map(|v| match v {
        PropValue::Int(i) => (*i as f64).to_string(),
        PropValue::Real(r) => r.to_string(),
        PropValue::Json(j) => j.parse::<f64>().map_or_else(|_| j.clone(), |r| r.to_string()),
        PropValue::Text(t) => t.clone(),
        PropValue::Bool(b) => b.to_string(),
        PropValue::Null => String::new(),
    });
    (first, count, values.collect::<Vec<_>>().join("\u{1f}"))
}

/// Files whose extent Web Mercator covers (no poles): the projected copies.
const PROJECTED: &[&str] =
    &["ne_10m_ports.geojson", "ne_10m_lakes_north_america.geojson", "ne_110m_rivers_lake_centerlines.geojson"];

#[test]
fn natural_earth_round_trips_through_geopackage() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    for source in natural_earth() {
        let name = source.file_stem().and_then(|s| s.to_str()).unwrap_or("layer").to_string();
        let (geojson, _) = read_ok(&source, &ReadOptions::default());
        let gpkg = dir.path().join(format!("{name}.gpkg"));
        ogr2ogr(&["-f", "GPKG", path_str(&gpkg), path_str(&source)]);
        let (ours, info) = read_ok(&gpkg, &ReadOptions::default());
        assert_eq!(
            (info.format.as_str(), info.layer.as_deref(), info.source_crs.as_deref()),
            ("GeoPackage", Some(name.as_str()), None)
        );
        assert_same(&format!("{name}.gpkg"), &geojson, &ours, 1e-9);
        // GDAL numbers rows from 1, in the order it read them.
        assert!(ours.iter().enumerate().all(|(i, f)| f.id == PropValue::Int(i as i64 + 1)));
        if PROJECTED.iter().any(|p| source.ends_with(p)) {
            let projected = dir.path().join(format!("{name}-3857.gpkg"));
            ogr2ogr(&["-f", "GPKG", "-t_srs", "EPSG:3857", path_str(&projected), path_str(&source)]);
            let (ours, info) = read_ok(&projected, &ReadOptions::default());
            assert!(info.source_crs.as_deref().is_some_and(|c| c.starts_with("EPSG:3857")), "{info:?}");
            assert_same(&format!("{name}-3857.gpkg"), &geojson, &ours, 1e-6);
        }
        eprintln!("{name}: {} features through GeoPackage", ours.len());
    }
}

#[test]
fn natural_earth_round_trips_through_flatgeobuf() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    for (n, source) in natural_earth().into_iter().enumerate() {
        let name = source.file_stem().and_then(|s| s.to_str()).unwrap_or("layer").to_string();
        let (mut geojson, _) = read_ok(&source, &ReadOptions::default());
        // GDAL's FlatGeobuf writer leaves out features without a geometry.
        geojson.retain(|f| f.geometry.is_some());
        let fgb = dir.path().join(format!("{name}.fgb"));
        // Every other file without the spatial index: both layouts are read.
        let index = if n % 2 == 0 { "SPATIAL_INDEX=YES" } else { "SPATIAL_INDEX=NO" };
        ogr2ogr(&["-f", "FlatGeobuf", "-lco", index, path_str(&fgb), path_str(&source)]);
        let (mut ours, info) = read_ok(&fgb, &ReadOptions::default());
        assert_eq!((info.format.as_str(), info.source_crs.as_deref()), ("FlatGeobuf", None));
        if index.ends_with("YES") {
            // GDAL writes features in the order of the spatial index: compare in one order.
            let mut sorted = geojson.clone();
            sorted.sort_by_key(order_key);
            ours.sort_by_key(order_key);
            assert_same(&format!("{name}.fgb ({index})"), &sorted, &ours, 1e-9);
        } else {
            assert_same(&format!("{name}.fgb ({index})"), &geojson, &ours, 1e-9);
        }
        assert!(ours.iter().all(|f| f.id == PropValue::Null), "FlatGeobuf has no feature ids");
        if PROJECTED.iter().any(|p| source.ends_with(p)) {
            let projected = dir.path().join(format!("{name}-3857.fgb"));
            let no_index = ["-lco", "SPATIAL_INDEX=NO"];
            ogr2ogr(
                &[
                    &["-f", "FlatGeobuf", "-t_srs", "EPSG:3857"],
                    &no_index[..],
                    &[path_str(&projected), path_str(&source)],
                ]
                .concat(),
            );
            let (ours, info) = read_ok(&projected, &ReadOptions::default());
            assert!(info.source_crs.as_deref().is_some_and(|c| c.starts_with("EPSG:3857")), "{info:?}");
            assert_same(&format!("{name}-3857.fgb"), &geojson, &ours, 1e-6);
        }
        eprintln!("{name}: {} features through FlatGeobuf ({index})", ours.len());
    }
}

const TYPED: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"big":9007199254740993,"flag":true,"day":"2024-05-01","at":"2024-05-01T12:00:00Z","frac":"2024-05-01T12:00:00.250Z","r":1.5,"s":"x","n":null,"obj":{"a":[1,2]}},"geometry":{"type":"Point","coordinates":[1.5,2.5]}},
{"type":"Feature","properties":{"big":-3,"flag":false,"day":"2023-12-31","at":"2023-12-31T23:59:59Z","frac":null,"r":2.25,"s":null,"n":null,"obj":null},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]],[[0.2,0.1],[0.8,0.1],[0.8,0.7],[0.2,0.1]]]}},
{"type":"Feature","properties":{"big":null,"flag":null,"day":null,"at":null,"frac":null,"r":null,"s":"é\"","n":null,"obj":[1]},"geometry":{"type":"MultiLineString","coordinates":[[[0,0,5],[1,1,6]],[[2,2,7],[3,3,8]]]}}
]}"#;

fn write_geojson(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the GeoJSON is written");
    path
}

fn props(feature: &Feature) -> Vec<(&str, &PropValue)> {
    feature.properties.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

#[test]
fn geopackage_keeps_the_column_types() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    let source = write_geojson(dir.path(), "typed.geojson", TYPED);
    let gpkg = dir.path().join("typed.gpkg");
    ogr2ogr(&["-f", "GPKG", path_str(&gpkg), path_str(&source)]);
    let (features, info) = read_ok(&gpkg, &ReadOptions::default());
    assert_eq!(info.layer.as_deref(), Some("typed"));
    let text = |s: &str| PropValue::Text(s.to_string());
    assert_eq!(
        props(&features[0]),
        vec![
            ("at", &text("2024-05-01T12:00:00.000Z")),
            ("big", &PropValue::Int(9007199254740993)),
            ("day", &text("2024-05-01")),
            ("flag", &PropValue::Bool(true)),
            ("frac", &text("2024-05-01T12:00:00.250Z")),
            ("n", &PropValue::Null),
            ("obj", &text(r#"{ "a": [ 1, 2 ] }"#)),
            ("r", &PropValue::Real(1.5)),
            ("s", &text("x")),
        ]
    );
    assert_eq!(features[1].properties["flag"], PropValue::Bool(false));
    assert_eq!(features[1].properties["big"], PropValue::Int(-3));
    assert_eq!(features[2].properties["s"], text("é\""));
    assert_eq!(features.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), [1, 2, 3].map(PropValue::Int));
    let Some(Geom::MultiLineString(lines)) = &features[2].geometry else { panic!("{:?}", features[2].geometry) };
    assert_eq!((lines[1][1].x, lines[1][1].y, lines[1][1].z), (3.0, 3.0, 8.0));
    let Some(Geom::Polygon(rings)) = &features[1].geometry else { panic!() };
    assert_eq!(rings.len(), 2);
}

#[test]
fn flatgeobuf_keeps_the_column_types() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    let source = write_geojson(dir.path(), "typed.geojson", TYPED);
    for index in ["SPATIAL_INDEX=YES", "SPATIAL_INDEX=NO"] {
        let fgb = dir.path().join(format!("typed-{}.fgb", index.len()));
        ogr2ogr(&["-f", "FlatGeobuf", "-lco", index, path_str(&fgb), path_str(&source)]);
        let (mut features, info) = read_ok(&fgb, &ReadOptions::default());
        assert_eq!((info.format.as_str(), info.layer.as_deref()), ("FlatGeobuf", None));
        assert_eq!(features.len(), 3);
        // With a spatial index GDAL writes features in the index's order: put them back.
        features.sort_by_key(|f| f.geometry.as_ref().map(|g| g.kind() as u8));
        let f = &features[0].properties;
        assert_eq!(f["big"], PropValue::Int(9007199254740993));
        assert_eq!(f["flag"], PropValue::Bool(true));
        assert_eq!(f["r"], PropValue::Real(1.5));
        assert_eq!(f["n"], PropValue::Null);
        assert!(same_value(&PropValue::Text("2024-05-01".into()), &f["day"]), "{:?}", f["day"]);
        assert!(same_value(&PropValue::Text("2024-05-01T12:00:00Z".into()), &f["at"]), "{:?}", f["at"]);
        assert!(matches!(&f["frac"], PropValue::Text(t) if t.contains("12:00:00.25")), "{:?}", f["frac"]);
        assert_eq!(features[1].properties["flag"], PropValue::Bool(false));
        assert_eq!(features[2].properties["big"], PropValue::Null);
        assert_eq!(features[2].properties["s"], PropValue::Text("é\"".into()));
        let Some(Geom::Polygon(rings)) = &features[1].geometry else { panic!("{:?}", features[1].geometry) };
        assert_eq!((rings.len(), rings[1].len()), (2, 4));
        assert_eq!((rings[1][2].x, rings[1][2].y, rings[1][2].has_z()), (0.8, 0.7, false));
        // GDAL made the layer 2D after its first feature: z is gone.
        let Some(Geom::MultiLineString(lines)) = &features[2].geometry else { panic!() };
        assert_eq!((lines.len(), lines[1][1].x, lines[1][1].has_z()), (2, 3.0, false));
    }
}

/// The typed features as GeoJSON, and a GeoPackage of them twice: `first` (WGS84) and
/// `Second` (UTM 31N).
fn two_layers(dir: &Path) -> (PathBuf, PathBuf) {
    let source = write_geojson(dir, "typed.geojson", TYPED);
    let gpkg = dir.join("two.gpkg");
    ogr2ogr(&["-f", "GPKG", "-nln", "first", path_str(&gpkg), path_str(&source)]);
    ogr2ogr(&["-f", "GPKG", "-update", "-nln", "Second", "-t_srs", "EPSG:32631", path_str(&gpkg), path_str(&source)]);
    (source, gpkg)
}

#[test]
fn a_geopackage_of_several_layers_is_read_by_name() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    let (source, gpkg) = two_layers(dir.path());
    let err = read(&gpkg, &ReadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("\"first\"") && err.contains("\"Second\"") && err.contains("layer option"), "{err}");
    let named = |layer: &str| ReadOptions { layer: Some(layer.to_string()), ..Default::default() };
    let (first, info) = read_ok(&gpkg, &named("first"));
    assert_eq!((first.len(), info.layer.as_deref(), info.source_crs), (3, Some("first"), None));
    // The name is matched exactly first, then without regard to case.
    let (second, info) = read_ok(&gpkg, &named("second"));
    assert_eq!(info.layer.as_deref(), Some("Second"));
    assert!(info.source_crs.as_deref().is_some_and(|c| c.starts_with("EPSG:32631")), "{info:?}");
    let geojson = read_ok(&source, &ReadOptions::default()).0;
    assert_same("Second", &geojson, &second, 1e-6);
    let err = read(&gpkg, &named("third")).unwrap_err().to_string();
    assert!(err.contains("no layer \"third\"") && err.contains("\"first\""), "{err}");
    // A CRS given with the source overrides the file's.
    let given = ReadOptions { source_crs: Some("EPSG:4326".into()), ..named("first") };
    assert_eq!(read_ok(&gpkg, &given).1.source_crs, None);
}

#[test]
fn each_layer_of_a_geopackage_splits_into_a_geopackage_of_its_own() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    let (source, gpkg) = two_layers(dir.path());
    assert_eq!(geoflow_formats::layers(&gpkg).unwrap(), vec!["Second".to_string(), "first".to_string()]);

    let (whole, _) = read_ok(&gpkg, &ReadOptions { layer: Some("Second".into()), ..Default::default() });
    let part = dir.path().join("second.gpkg");
    std::fs::File::create(&part).unwrap();
    geoflow_formats::extract_layer(&gpkg, "Second", &part).unwrap();
    assert_eq!(geoflow_formats::layers(&part).unwrap(), vec!["Second".to_string()]);
    // One layer now: read without choosing, with the same values, types and CRS.
    let (alone, info) = read_ok(&part, &ReadOptions::default());
    assert_eq!(info.layer.as_deref(), Some("Second"));
    assert!(info.source_crs.as_deref().is_some_and(|c| c.starts_with("EPSG:32631")), "{info:?}");
    // (NaN z values do not compare equal: their text does.)
    assert_eq!(format!("{alone:?}"), format!("{whole:?}"));
    // And it is a GeoPackage to GDAL too.
    let out = Command::new("ogrinfo").args(["-so", "-al", path_str(&part)]).output().expect("ogrinfo runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("Layer name: Second") && said.contains("Feature Count: 3"), "{said}");
    assert!(!said.contains("first"), "{said}");

    let err = geoflow_formats::extract_layer(&gpkg, "third", &part).unwrap_err().to_string();
    assert!(err.contains("\"third\""), "{err}");
    // A file of one layer has nothing to split.
    assert!(geoflow_formats::layers(&source).unwrap().is_empty());
}

#[test]
fn an_attribute_table_is_read_when_named() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    let csv = write_geojson(dir.path(), "plain.csv", "name,count\nalpha,1\nbeta,2\n");
    let gpkg = dir.path().join("attributes.gpkg");
    ogr2ogr(&["-f", "GPKG", "-oo", "AUTODETECT_TYPE=YES", path_str(&gpkg), path_str(&csv)]);
    let err = read(&gpkg, &ReadOptions::default()).unwrap_err().to_string();
    assert!(err.contains("\"plain\"") && err.contains("layer option"), "{err}");
    let (features, info) = read_ok(&gpkg, &ReadOptions { layer: Some("plain".into()), ..Default::default() });
    assert_eq!(info.layer.as_deref(), Some("plain"));
    assert_eq!(features.len(), 2);
    assert!(features.iter().all(|f| f.geometry.is_none()));
    assert_eq!(props(&features[1]), vec![("count", &PropValue::Int(2)), ("name", &PropValue::Text("beta".into()))]);
}

/// A GeoPackage written directly: values of every kind, an empty geometry, a broken one.
#[test]
fn geopackage_values_and_broken_geometries() {
    let dir = tmp();
    let path = dir.path().join("made.gpkg");
    let conn = rusqlite::Connection::open(&path).expect("a new database");
    conn.execute_batch(
        r#"
        CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT, srs_id INTEGER PRIMARY KEY, organization TEXT,
            organization_coordsys_id INTEGER, definition TEXT, description TEXT);
        INSERT INTO gpkg_spatial_ref_sys VALUES ('undefined', -1, 'NONE', -1, 'undefined', NULL);
        CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY, data_type TEXT, identifier TEXT,
            description TEXT, last_change TEXT, min_x REAL, min_y REAL, max_x REAL, max_y REAL, srs_id INTEGER);
        INSERT INTO gpkg_contents (table_name, data_type, srs_id) VALUES ('things', 'features', -1);
        CREATE TABLE gpkg_geometry_columns (table_name TEXT, column_name TEXT, geometry_type_name TEXT,
            srs_id INTEGER, z TINYINT, m TINYINT);
        INSERT INTO gpkg_geometry_columns VALUES ('things', 'shape', 'GEOMETRY', -1, 0, 0);
        CREATE TABLE things (id INTEGER PRIMARY KEY, shape BLOB, small SMALLINT, ok BOOLEAN, weight DOUBLE,
            raw BLOB, note VARCHAR(10), loose);
        "#,
    )
    .expect("the tables are made");
    let point = |x: f64, y: f64| {
        let mut blob = b"GP\0\x01\xff\xff\xff\xff".to_vec();
        blob.extend_from_slice(&geoflow_core::wkb::encode(&Geom::Point(Pos::xy(x, y))).wkb);
        blob
    };
    let rows: Vec<(i64, Option<Vec<u8>>, rusqlite::types::Value)> = vec![
        (10, Some(point(1.0, 2.0)), rusqlite::types::Value::Integer(7)),
        (20, Some(b"GP\0\x11\xff\xff\xff\xff".to_vec()), rusqlite::types::Value::Real(0.5)),
        (30, Some(b"GP\0\x01\xff\xff\xff\xff\x01\x02".to_vec()), rusqlite::types::Value::Text("t".into())),
        (35, None, rusqlite::types::Value::Blob(vec![0xff])),
    ];
    for (id, shape, loose) in rows {
        conn.execute(
            "INSERT INTO things VALUES (?1, ?2, 3, ?3, 2, x'00ff10', 'n', ?4)",
            rusqlite::params![id, shape, id % 20 == 10, loose],
        )
        .expect("a row is inserted");
    }
    drop(conn);
    let (features, info) = read_ok(&path, &ReadOptions::default());
    assert_eq!((info.layer.as_deref(), info.source_crs), (Some("things"), None));
    assert_eq!(features.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), [10, 20, 30, 35].map(PropValue::Int));
    assert!(
        matches!(features[0].geometry, Some(Geom::Point(Pos { x: 1.0, y: 2.0, .. }))),
        "{:?}",
        features[0].geometry
    );
    assert_eq!(
        props(&features[0]),
        vec![
            ("loose", &PropValue::Int(7)),
            ("note", &PropValue::Text("n".into())),
            ("ok", &PropValue::Bool(true)),
            ("raw", &PropValue::Text("AP8Q".into())),
            ("small", &PropValue::Int(3)),
            ("weight", &PropValue::Real(2.0)),
        ]
    );
    assert_eq!(features[1].properties["ok"], PropValue::Bool(false));
    assert_eq!(features[1].properties["loose"], PropValue::Real(0.5));
    assert_eq!((&features[1].geometry, &features[1].problems), (&None, &vec![]), "an empty geometry is none");
    assert_eq!(features[2].geometry, None);
    assert_eq!(features[2].problems.len(), 1);
    assert_eq!(features[2].problems[0].code, ProblemCode::InvalidCoordinates);
    assert!(features[2].problems[0].message.contains("fid 30"), "{:?}", features[2].problems);
    assert_eq!(features[3].properties["loose"], PropValue::Text("/w==".into()));
    assert_eq!((&features[3].geometry, features[3].problems.len()), (&None, 0));
}

#[test]
fn an_sqlite_database_that_is_no_geopackage_is_refused() {
    let dir = tmp();
    let path = dir.path().join("plain.sqlite");
    let conn = rusqlite::Connection::open(&path).expect("a new database");
    conn.execute_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);").expect("a table");
    drop(conn);
    let err = read(&path, &ReadOptions::default()).unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::UnsupportedFormat));
    assert!(err.to_string().contains("not a GeoPackage"), "{err}");
    // Nothing was written next to the file.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["plain.sqlite"]);
}

#[test]
fn formats_are_told_by_content_not_name() {
    if !have_ogr2ogr() {
        return;
    }
    let dir = tmp();
    let source = write_geojson(dir.path(), "typed.geojson", TYPED);
    let gpkg = dir.path().join("really-a-geopackage.json");
    ogr2ogr(&["-f", "GPKG", "-nln", "typed", path_str(&gpkg), path_str(&source)]);
    let made = dir.path().join("typed.fgb");
    ogr2ogr(&["-f", "FlatGeobuf", path_str(&made), path_str(&source)]);
    let fgb = dir.path().join("really-flatgeobuf.gpkg");
    std::fs::rename(&made, &fgb).unwrap();
    let (features, info) = read_ok(&gpkg, &ReadOptions::default());
    assert_eq!((info.format.as_str(), features.len()), ("GeoPackage", 3));
    let (features, info) = read_ok(&fgb, &ReadOptions::default());
    assert_eq!((info.format.as_str(), features.len()), ("FlatGeobuf", 3));
    // Gzipped, each is unpacked to the scratch folder first.
    let gz = dir.path().join("packed.bin");
    let mut encoder = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut File::open(&fgb).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();
    let (features, info) = read_ok(&gz, &ReadOptions::default());
    assert_eq!((info.format.as_str(), features.len()), ("gzip FlatGeobuf", 3));
}

/// Reads `bytes` as a file: never a panic; an error names what is wrong.
fn read_bytes(dir: &Path, bytes: &[u8], format: &str) -> Result<usize, String> {
    let path = dir.join("input");
    std::fs::write(&path, bytes).expect("the input is written");
    match read(&path, &ReadOptions::default()) {
        Ok((features, _)) => {
            for f in &features {
                assert!(f.problems.iter().all(|p| !p.message.is_empty()));
            }
            Ok(features.len())
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            // Once the magic bytes are there, the error names the format.
            let detected =
                matches!(geoflow_formats::detect(bytes), geoflow_formats::Detected::Format(f) if f.name() == format);
            if detected {
                assert!(message.contains(format) || message.contains("CRS"), "{message}");
            }
            Err(message)
        }
    }
}

/// Small files to break: a few features of each geometry type (made once per test binary).
fn sample(driver: &str, extra: &[&str]) -> Option<Vec<u8>> {
    static MADE: Mutex<BTreeMap<String, Option<Vec<u8>>>> = Mutex::new(BTreeMap::new());
    let key = format!("{driver} {extra:?}");
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    made.entry(key)
        .or_insert_with(|| {
            if !have_ogr2ogr() {
                return None;
            }
            let dir = tmp();
            let source = write_geojson(dir.path(), "typed.geojson", TYPED);
            // GDAL names FlatGeobuf output by its extension (without one it makes a folder).
            let out = dir.path().join(if driver == "GPKG" { "sample.gpkg" } else { "sample.fgb" });
            let mut args = vec!["-f", driver];
            args.extend_from_slice(extra);
            args.extend([path_str(&out), path_str(&source)]);
            ogr2ogr(&args);
            Some(std::fs::read(&out).expect("the sample is read"))
        })
        .clone()
}

#[test]
fn truncated_flatgeobuf_files_end_in_clear_errors() {
    let dir = tmp();
    let Some(bytes) = sample("FlatGeobuf", &[]) else { return };
    let cuts: Vec<usize> = (0..bytes.len()).collect();
    for cut in cuts {
        let result = read_bytes(dir.path(), &bytes[..cut], "FlatGeobuf");
        if cut >= 8 {
            let message = result.expect_err("a cut file is an error");
            assert!(message.contains("FlatGeobuf file is unreadable"), "{cut}: {message}");
        }
    }
    assert_eq!(read_bytes(dir.path(), &bytes, "FlatGeobuf"), Ok(3));
}

#[test]
fn truncated_geopackages_end_in_clear_errors() {
    let dir = tmp();
    let Some(bytes) = sample("GPKG", &[]) else { return };
    let mut cuts: Vec<usize> = (0..4096).step_by(7).collect();
    cuts.extend((4096..bytes.len()).step_by(bytes.len() / 40));
    for cut in cuts {
        let _ = read_bytes(dir.path(), &bytes[..cut.min(bytes.len())], "GeoPackage");
    }
    assert_eq!(read_bytes(dir.path(), &bytes, "GeoPackage"), Ok(3));
}

fn flip(bytes: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let len = out.len();
    for &(at, bit) in flips {
        out[at % len] ^= 1 << (bit % 8);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn flatgeobuf_with_flipped_bits_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let dir = tmp();
        if let Some(bytes) = sample("FlatGeobuf", &["-lco", "SPATIAL_INDEX=NO"]) {
            let _ = read_bytes(dir.path(), &flip(&bytes, &flips), "FlatGeobuf");
        }
    }

    #[test]
    fn flatgeobuf_garbage_after_the_magic_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..600)) {
        let dir = tmp();
        let mut bytes = b"fgb\x03fgb\x00".to_vec();
        bytes.extend_from_slice(&garbage);
        let _ = read_bytes(dir.path(), &bytes, "FlatGeobuf");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn geopackages_with_flipped_bits_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16)) {
        let dir = tmp();
        if let Some(bytes) = sample("GPKG", &[]) {
            let _ = read_bytes(dir.path(), &flip(&bytes, &flips), "GeoPackage");
        }
    }

    #[test]
    fn sqlite_garbage_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let dir = tmp();
        let mut bytes = b"SQLite format 3\0".to_vec();
        bytes.extend_from_slice(&garbage);
        let _ = read_bytes(dir.path(), &bytes, "GeoPackage");
    }
}
