//! Typed geometry columns as GIS clients see them: the Natural Earth files loaded by
//! `geoflow ingest` into a GeoPackage and into PostGIS open in GDAL (`ogrinfo`) and in QGIS
//! (headless, through its `ogr` and `postgres` providers) as one layer of the type the data
//! has — Polygon and MultiPolygon together as MultiPolygon.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use geoflow_testkit::{postgis_database, skip};
use serde_json::Value;
use support::{geoflow, have_tool, libpq_conninfo, shared_dir};

fn natural_earth() -> Option<Vec<PathBuf>> {
    let dir = shared_dir()?.join("data/naturalearth");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|f| f.extension().is_some_and(|e| e == "geojson"));
    files.sort();
    Some(files)
}

fn dataset_of(file: &Path) -> String {
    file.file_stem().unwrap().to_str().unwrap().to_string()
}

/// The geometry type `auto` gives a file: its one type, a single type and its Multi type
/// together as the Multi type, anything else generic (`None`).
fn expected_type(file: &Path) -> Option<&'static str> {
    let collection: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let kinds: BTreeSet<String> = collection["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["geometry"]["type"].as_str().map(String::from))
        .collect();
    let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
    fn multi(single: &str) -> &str {
        match single {
            "Point" => "MultiPoint",
            "LineString" => "MultiLineString",
            "Polygon" => "MultiPolygon",
            other => other,
        }
    }
    let all = ["Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"];
    match kinds.as_slice() {
        [one] => all.into_iter().find(|k| k == one),
        [a, b] if multi(a) == *b || multi(b) == *a => all.into_iter().find(|k| *k == multi(a).max(multi(b))),
        _ => None,
    }
}

/// How `ogrinfo` names a geometry type ("Multi Polygon").
fn ogr_name(kind: &str) -> String {
    let mut out = String::new();
    for (i, c) in kind.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Loads `file` with `geoflow ingest … --json` into `database`; the features loaded.
fn ingest(database: &str, file: &Path, dataset: &str) -> u64 {
    let out = geoflow()
        .arg("ingest")
        .arg(file)
        .args(["--dataset", dataset, "--json", "--no-progress", "--database", database])
        .output()
        .expect("geoflow runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest {}: {stderr}", file.display());
    let summary: Value = serde_json::from_slice(&out.stdout).expect("one JSON summary");
    assert_eq!(summary["status"], "loaded", "{summary}");
    assert!(summary["schema_changes"].as_array().unwrap().iter().all(|c| c["change"] != "geometry_widened"));
    summary["features_loaded"].as_u64().unwrap()
}

/// The `Geometry:` line of `ogrinfo -so` for a layer.
fn ogr_geometry(source: &str, layer: &str) -> String {
    let out = Command::new("ogrinfo").args(["-ro", "-so", source, layer]).output().expect("ogrinfo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ogrinfo {source} {layer}: {}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find_map(|l| l.strip_prefix("Geometry: ")).unwrap_or_else(|| panic!("{text}"));
    line.trim().to_string()
}

/// The QGIS python bindings, where installed.
fn qgis_python() -> Option<&'static str> {
    let python = "/usr/bin/python3";
    let found = Command::new(python)
        .args(["-c", "import qgis.core"])
        .env("QT_QPA_PLATFORM", "offscreen")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        Some(python)
    } else {
        skip("QGIS's python bindings (python3-qgis) are not installed")
    }
}

/// Opens layers (`(name, provider, uri)`) in QGIS; each layer's validity, type and count.
fn qgis_layers(python: &str, layers: &[(String, &str, String)]) -> BTreeMap<String, Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qgis_layers.py");
    let specs: Vec<Value> = layers
        .iter()
        .map(|(name, provider, uri)| serde_json::json!({"name": name, "provider": provider, "uri": uri}))
        .collect();
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(python)
        .arg(&script)
        .env("QT_QPA_PLATFORM", "offscreen")
        // QGIS writes its settings and caches under the home folder.
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(serde_json::to_string(&specs).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "QGIS: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn check_qgis(found: &BTreeMap<String, Value>, name: &str, kind: &str, count: u64) {
    let layer = found.get(name).unwrap_or_else(|| panic!("QGIS did not report {name}: {found:?}"));
    assert_eq!(layer["valid"], true, "QGIS could not open {name}: {layer}");
    assert_eq!(layer["type"], kind, "{name}: {layer}");
    assert_eq!(layer["count"], count, "{name}: {layer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natural_earth_layers_are_typed_in_gdal_and_qgis() {
    let Some(files) = natural_earth() else { return };
    if !have_tool("ogrinfo") {
        return;
    }
    let python = qgis_python();
    let dir = tempfile::tempdir().unwrap();
    let gpkg = dir.path().join("naturalearth.gpkg");
    let gpkg_url = gpkg.to_str().unwrap().to_string();
    let db = postgis_database().await;

    // What each file should become, and how many features each store holds.
    let mut layers: Vec<(String, &'static str, u64)> = Vec::new();
    for file in &files {
        let dataset = dataset_of(file);
        let Some(kind) = expected_type(file) else { continue };
        let loaded = ingest(&gpkg_url, file, &dataset);
        if let Some(db) = &db {
            assert_eq!(ingest(db.url(), file, &dataset), loaded, "both stores load the same features");
        }
        layers.push((dataset, kind, loaded));
    }
    assert!(layers.iter().any(|(_, k, _)| *k == "MultiPolygon"), "the countries are MultiPolygons: {layers:?}");
    assert!(layers.iter().any(|(_, k, _)| *k == "Point"), "{layers:?}");

    let conn = db.as_ref().map(|db| libpq_conninfo(db.url()));
    let pg_source = conn.as_ref().map(|c| format!("PG:{c}"));
    for (dataset, kind, _) in &layers {
        assert_eq!(ogr_geometry(&gpkg_url, dataset), ogr_name(kind), "GeoPackage layer {dataset}");
        if let Some(pg) = &pg_source {
            assert_eq!(ogr_geometry(pg, &format!("datasets.{dataset}")), ogr_name(kind), "PostGIS table {dataset}");
        }
    }

    let Some(python) = python else { return };
    let mut specs: Vec<(String, &str, String)> = Vec::new();
    for (dataset, _, _) in &layers {
        specs.push((format!("gpkg:{dataset}"), "ogr", format!("{gpkg_url}|layername={dataset}")));
    }
    if let Some(conn) = &conn {
        for (dataset, _, _) in &layers {
            // No type in the URI: QGIS reads it from the column, as when a user adds the table.
            let uri = format!("{conn} key='fid' table=\"datasets\".\"{dataset}\" (geom)");
            specs.push((format!("postgis:{dataset}"), "postgres", uri));
        }
    }
    let found = qgis_layers(python, &specs);
    for (dataset, kind, count) in &layers {
        check_qgis(&found, &format!("gpkg:{dataset}"), kind, *count);
        if db.is_some() {
            check_qgis(&found, &format!("postgis:{dataset}"), kind, *count);
        }
    }
}

fn feature_collection(geometries: &[&str]) -> String {
    let features: Vec<String> = geometries
        .iter()
        .enumerate()
        .map(|(i, g)| format!(r#"{{"type":"Feature","id":"f{i}","properties":{{"n":{i}}},"geometry":{g}}}"#))
        .collect();
    format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(","))
}

const SQUARE: &str = r#"{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}"#;
const BOWTIE: &str = r#"{"type":"Polygon","coordinates":[[[0,0],[2,2],[2,0],[0,2],[0,0]]]}"#;
const POINT: &str = r#"{"type":"Point","coordinates":[1,2]}"#;

/// `gpkg_geometry_columns` of a layer: (geometry_type_name, z).
fn registered(gpkg: &Path, layer: &str) -> (String, i64) {
    let conn = rusqlite::Connection::open(gpkg).unwrap();
    conn.query_row("SELECT geometry_type_name, z FROM gpkg_geometry_columns WHERE table_name = ?1", [layer], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

#[test]
fn the_command_line_options_decide_the_type_and_repairs_fit_it() {
    let dir = tempfile::tempdir().unwrap();
    let gpkg = dir.path().join("t.gpkg");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    // A polygon layer with a bowtie, repaired into two polygons: typed MultiPolygon up front,
    // so the repair fits without widening the column.
    let polygons = write("polygons.geojson", feature_collection(&[SQUARE, BOWTIE, SQUARE]));
    let repaired = support::ingest(&gpkg, &polygons, "parcels", &["--on-invalid", "repair"]);
    assert_eq!(repaired.code, 0, "{}", repaired.stderr);
    assert_eq!(
        (repaired.summary["features_loaded"].as_u64(), repaired.summary["repaired"].as_u64()),
        (Some(3), Some(1))
    );
    let widened = |summary: &Value| {
        summary["schema_changes"].as_array().unwrap().iter().filter(|c| c["change"] == "geometry_widened").count()
    };
    assert_eq!(widened(&repaired.summary), 0, "{}", repaired.summary);
    assert_eq!(registered(&gpkg, "parcels"), ("MULTIPOLYGON".to_string(), 0));
    // Skipping instead leaves a polygon layer.
    let skipped = support::ingest(&gpkg, &polygons, "plain", &[]);
    assert_eq!(skipped.summary["features_loaded"], 2);
    assert_eq!(registered(&gpkg, "plain"), ("POLYGON".to_string(), 0));

    // A requested type: other types are invalid features under the policy.
    let mixed = write("mixed.geojson", feature_collection(&[SQUARE, POINT, "null"]));
    let typed = support::ingest(&gpkg, &mixed, "multi", &["--geometry-type", "multipolygon"]);
    assert_eq!(typed.code, 0, "{}", typed.stderr);
    assert_eq!(typed.summary["features_loaded"], 2);
    assert_eq!(typed.summary["errors"][0]["code"], "geometry-type", "{}", typed.summary);
    assert_eq!(typed.summary["errors"][0]["index"], 1);
    assert_eq!(registered(&gpkg, "multi"), ("MULTIPOLYGON".to_string(), 0));
    let rejected = support::ingest(&gpkg, &mixed, "multi", &["--geometry-type", "polygon", "--on-invalid", "reject"]);
    assert_eq!(rejected.code, 3, "{}", rejected.summary);

    // The same file under another geometry type loads again (the setting is part of the no-op
    // check), and `any` widens the column, as a reported change.
    let again = support::ingest(&gpkg, &mixed, "multi", &["--geometry-type", "multipolygon"]);
    assert_eq!(again.summary["status"], "unchanged");
    let any = support::ingest(&gpkg, &mixed, "multi", &["--geometry-type", "any"]);
    assert_eq!(any.summary["status"], "loaded", "{}", any.summary);
    assert_eq!(
        any.summary["schema_changes"][0],
        serde_json::json!({"change": "geometry_widened", "column": "geom", "from": "MultiPolygon", "to": "Geometry"})
    );
    assert_eq!(registered(&gpkg, "multi"), ("GEOMETRY".to_string(), 0));
    let bad = geoflow()
        .arg("ingest")
        .arg(&mixed)
        .args(["--dataset", "multi", "--geometry-type", "polygonz", "--database"])
        .arg(&gpkg)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("multipolygon"), "the error lists the types");

    // Strict: a file that does not fit the column is rejected, naming the feature.
    let points = write("points.geojson", feature_collection(&[POINT]));
    let strict = support::ingest(&gpkg, &points, "plain", &["--schema-policy", "strict"]);
    assert_eq!(strict.code, 3, "{}", strict.summary);
    assert!(strict.summary["error"].as_str().unwrap().contains("feature 0 has a Point geometry"), "{}", strict.summary);
    assert_eq!(registered(&gpkg, "plain"), ("POLYGON".to_string(), 0));

    if have_tool("ogrinfo") {
        let (count, _, text) = support::ogr_layer(&gpkg, Some("parcels"));
        assert_eq!(count, 3);
        assert!(text.contains("Geometry: Multi Polygon"), "{text}");
    }
}
