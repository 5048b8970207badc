//! `geoflow ingest` end to end: real files in, a GeoPackage out, read back by GDAL.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn status(i: &Ingested) -> &str {
    i.summary["status"].as_str().unwrap()
}

#[test]
fn every_natural_earth_file_loads_with_the_feature_count_gdal_reads() {
    let Some(shared) = shared_dir() else { return };
    if !have_tool("ogrinfo") {
        return;
    }
    let tmp = scratch();
    let gpkg = tmp.path().join("ne.gpkg");
    let mut files: Vec<_> =
        std::fs::read_dir(shared.join("data/naturalearth")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 12);
    for file in files {
        let dataset = file.file_stem().unwrap().to_str().unwrap().to_string();
        let (expected, source_extent, _) = ogr_layer(&file, None);
        let run = ingest(&gpkg, &file, &dataset, &["--on-invalid", "repair"]);
        assert_eq!(run.code, 0, "{}: {}", file.display(), run.summary);
        assert_eq!(status(&run), "loaded");
        let s = &run.summary;
        assert_eq!(s["features_read"], json!(expected), "{dataset}");
        // Natural Earth has a few OGC-invalid polygons: repaired, never silently stored or lost.
        assert_eq!(s["skipped"], json!(0), "{dataset}: {s}");
        let (count, extent, _) = ogr_layer(&gpkg, Some(&dataset));
        assert_eq!(count, expected, "{dataset}: GDAL counts {count} features in our table, {expected} in the source");
        let (ours, theirs) = (extent.unwrap(), source_extent.unwrap());
        if s["repaired"] == json!(0) {
            for k in 0..4 {
                assert!((ours[k] - theirs[k]).abs() < 1e-9, "{dataset}: extent {ours:?} vs {theirs:?}");
            }
        }
    }
}

#[test]
fn attribute_values_read_back_by_gdal_match_the_source() {
    let Some(shared) = shared_dir() else { return };
    if !have_tool("ogr2ogr") {
        return;
    }
    let tmp = scratch();
    let gpkg = tmp.path().join("a.gpkg");
    let src = shared.join("data/naturalearth/ne_110m_admin_0_countries.geojson");
    let run = ingest(&gpkg, &src, "countries", &["--on-invalid", "repair"]);
    assert_eq!(run.code, 0, "{}", run.summary);
    let source: Value = serde_json::from_slice(&std::fs::read(&src).unwrap()).unwrap();
    let ours = ogr_features(&gpkg, "countries");
    let want = source["features"].as_array().unwrap();
    assert_eq!(ours.len(), want.len());
    let titles = column_titles(&gpkg, "countries");
    for (i, (got, want)) in ours.iter().zip(want).enumerate() {
        for (key, value) in want["properties"].as_object().unwrap() {
            let column = &titles[key];
            let got = &got["properties"][column];
            let same = match (got, value) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => got == value,
            };
            assert!(same, "feature {i} {key}: {got} != {value}");
        }
    }
}

/// Original property key → column name, from the GeoPackage schema extension.
fn column_titles(gpkg: &Path, table: &str) -> std::collections::HashMap<String, String> {
    let conn = rusqlite::Connection::open(gpkg).unwrap();
    let mut stmt = conn.prepare("SELECT title, column_name FROM gpkg_data_columns WHERE table_name = ?1").unwrap();
    let rows = stmt.query_map([table], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn geojsonhint_corpus_gets_a_clean_load_or_a_clear_error() {
    let Some(shared) = shared_dir() else { return };
    let tmp = scratch();
    let gpkg = tmp.path().join("hint.gpkg");
    let dir = shared.join("data/geojsonhint");
    // Messages the reference linter flags that RFC 7946 words as SHOULD: not errors here.
    let advisory = ["right-hand rule", "should avoid", "should be avoided", "should not have more than 3"];
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.join("bad")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("geojson") {
            continue;
        }
        let verdict: Value = serde_json::from_slice(&std::fs::read(path.with_extension("result")).unwrap()).unwrap();
        let errors: Vec<&str> = verdict
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m.get("level").and_then(Value::as_str) != Some("message"))
            .filter_map(|m| m["message"].as_str())
            .filter(|m| !advisory.iter().any(|a| m.contains(a)))
            .collect();
        let name = path.file_stem().unwrap().to_str().unwrap().replace('-', "_");
        let dataset = format!("d_{name}");
        let run = ingest(&gpkg, &path, &dataset, &["--on-invalid", "reject"]);
        let s = &run.summary;
        // positions with 4+ numbers are an error here (RFC 7946: positions of 2 or 3 numbers).
        let four_d = path.file_name().unwrap() == "point-toomany.geojson";
        if errors.is_empty() && !four_d {
            assert_eq!(run.code, 0, "{}: the linter finds no error, we did: {s}", path.display());
            assert_eq!(s["status"], "loaded");
        } else {
            assert_eq!(run.code, 3, "{}: the linter finds {errors:?}, we loaded: {s}", path.display());
            assert_eq!(s["status"], "rejected");
            let error = s["error"].as_str().unwrap();
            assert!(error.contains(path.file_name().unwrap().to_str().unwrap()), "the error names the source: {error}");
            assert!(error.len() > 30, "a clear error: {error}");
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} files checked");
    for entry in std::fs::read_dir(dir.join("good")).unwrap() {
        let path = entry.unwrap().path();
        let run = ingest(&gpkg, &path, "good", &["--on-invalid", "reject"]);
        // The linter does not check WGS84 ranges; issue82.geojson has latitudes below −90.
        if path.file_name().unwrap() == "issue82.geojson" {
            assert_eq!(
                (run.code, run.summary["errors"][0]["code"].as_str()),
                (3, Some("out-of-range")),
                "{}",
                run.summary
            );
            continue;
        }
        assert_eq!(run.code, 0, "{}: {}", path.display(), run.summary);
        assert_eq!(run.summary["features_loaded"], run.summary["features_read"]);
    }
}

/// By default a dataset is its newest file: the same data under another name replaces it,
/// identical content is a no-op unless forced or loaded under another policy.
#[test]
fn a_dataset_is_its_newest_file_by_default() {
    let tmp = scratch();
    let gpkg = tmp.path().join("s.gpkg");
    let today = write(tmp.path(), "roads-today.geojson", &points(&[(1.0, 1.0), (2.0, 2.0)]));
    let tomorrow = write(tmp.path(), "roads-tomorrow.geojson", &points(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]));
    assert_eq!(status(&ingest(&gpkg, &today, "roads", &[])), "loaded");
    let replaced = ingest(&gpkg, &tomorrow, "roads", &[]);
    assert_eq!(status(&replaced), "loaded");
    assert_eq!(count_rows(&gpkg, "roads"), 3, "replaced, not added: {}", replaced.summary);

    let again = ingest(&gpkg, &tomorrow, "roads", &[]);
    assert_eq!(status(&again), "unchanged");
    let forced = ingest(&gpkg, &tomorrow, "roads", &["--force"]);
    assert_eq!((status(&forced), forced.summary["replaced_rows"].clone()), ("loaded", json!(3)));
    let repaired = ingest(&gpkg, &tomorrow, "roads", &["--on-invalid", "repair"]);
    assert_eq!(status(&repaired), "loaded", "another policy loads the same content again");
    assert_eq!(count_rows(&gpkg, "roads"), 3);

    // A dataset keeps the mode it was created with.
    let appended = ingest(&gpkg, &today, "roads", &["--mode", "append"]);
    assert_eq!(status(&appended), "loaded");
    assert_eq!(count_rows(&gpkg, "roads"), 2, "still replace: {}", appended.summary);
}

/// In upsert mode keyed by the Feature id, a file adds its new ids and replaces the known
/// ones; a feature without an id is reported under the invalid-feature policy.
#[test]
fn upsert_by_feature_id_adds_and_replaces_features() {
    let tmp = scratch();
    let gpkg = tmp.path().join("s.gpkg");
    let feature = |id: Option<u32>, x: f64| {
        let id = id.map_or(String::new(), |id| format!(r#""id":{id},"#));
        format!(
            r#"{{"type":"Feature",{id}"properties":{{"x":{x}}},"geometry":{{"type":"Point","coordinates":[{x},0]}}}}"#
        )
    };
    let collection =
        |features: &[String]| format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(","));
    let monday = write(tmp.path(), "monday.geojson", &collection(&[feature(Some(1), 1.0), feature(Some(2), 2.0)]));
    let tuesday = write(
        tmp.path(),
        "tuesday.geojson",
        &collection(&[feature(Some(2), 20.0), feature(None, 9.0), feature(Some(3), 30.0)]),
    );
    assert_eq!(status(&ingest(&gpkg, &monday, "stations", &["--mode", "upsert"])), "loaded");
    let update = ingest(&gpkg, &tuesday, "stations", &[]);
    assert_eq!(status(&update), "loaded", "{}", update.summary);
    assert_eq!((update.summary["replaced_rows"].clone(), update.summary["skipped"].clone()), (json!(1), json!(1)));
    assert_eq!(update.summary["errors"][0]["code"], "missing-key", "{}", update.summary);
    assert_eq!(update.summary["errors"][0]["index"], 1, "{}", update.summary);
    assert_eq!(count_rows(&gpkg, "stations"), 3);
    // Under reject, the feature without a key fails the file, which changes nothing.
    let rejected = ingest(&gpkg, &tuesday, "stations", &["--on-invalid", "reject", "--force"]);
    assert_eq!((rejected.code, status(&rejected)), (3, "rejected"), "{}", rejected.summary);
    assert!(rejected.summary["error"].as_str().unwrap().contains("feature 1"), "{}", rejected.summary);
    assert_eq!(count_rows(&gpkg, "stations"), 3);
}

#[test]
fn identical_content_is_a_no_op_and_a_new_version_replaces_only_its_source() {
    let tmp = scratch();
    let gpkg = tmp.path().join("s.gpkg");
    let a = write(tmp.path(), "a.geojson", &points(&[(1.0, 1.0), (2.0, 2.0)]));
    let b = write(tmp.path(), "b.geojson", &points(&[(5.0, 5.0)]));
    assert_eq!(status(&ingest(&gpkg, &a, "pts", &["--mode", "append"])), "loaded");
    assert_eq!(status(&ingest(&gpkg, &b, "pts", &["--mode", "append"])), "loaded");
    let again = ingest(&gpkg, &a, "pts", &["--mode", "append"]);
    assert_eq!((again.code, status(&again)), (0, "unchanged"));
    assert_eq!(count_rows(&gpkg, "pts"), 3);
    // A newer version of a.geojson: its rows are replaced, b's are untouched.
    write(tmp.path(), "a.geojson", &points(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]));
    let newer = ingest(&gpkg, &a, "pts", &["--mode", "append"]);
    assert_eq!(status(&newer), "loaded");
    assert_eq!(newer.summary["replaced_rows"], json!(2));
    assert_eq!(count_rows(&gpkg, "pts"), 4);
    // A rejected version leaves the previous rows of that source in place.
    write(tmp.path(), "a.geojson", &points(&[(1.0, 1.0), (200.0, 2.0)]));
    let rejected = ingest(&gpkg, &a, "pts", &["--on-invalid", "reject"]);
    assert_eq!((rejected.code, status(&rejected)), (3, "rejected"));
    assert!(rejected.summary["error"].as_str().unwrap().contains("feature 1"), "{}", rejected.summary);
    assert_eq!(count_rows(&gpkg, "pts"), 4);
    // A truncated file fails as a whole: nothing half-written.
    let text = points(&[(7.0, 7.0), (8.0, 8.0)]);
    write(tmp.path(), "a.geojson", &text[..text.len() - 10]);
    let truncated = ingest(&gpkg, &a, "pts", &["--mode", "append"]);
    assert_eq!((truncated.code, status(&truncated)), (3, "rejected"));
    assert!(truncated.summary["error"].as_str().unwrap().contains("truncated"), "{}", truncated.summary);
    assert_eq!(count_rows(&gpkg, "pts"), 4);
}

#[test]
fn skip_reports_every_invalid_feature_with_index_id_and_reason() {
    let tmp = scratch();
    let gpkg = tmp.path().join("v.gpkg");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample.geojson");
    let run = ingest(&gpkg, &sample, "sample", &[]);
    let s = &run.summary;
    assert_eq!(run.code, 0);
    assert_eq!(
        (s["features_read"].as_u64(), s["features_loaded"].as_u64(), s["skipped"].as_u64()),
        (Some(10), Some(8), Some(2))
    );
    let errors = s["errors"].as_array().unwrap();
    assert_eq!(errors[0]["index"], 8);
    assert_eq!(errors[0]["id"], "bad-bowtie");
    assert_eq!(errors[0]["code"], "self-intersection");
    assert_eq!(errors[1]["index"], 9);
    assert_eq!(errors[1]["code"], "out-of-range");
    assert!(errors[1]["reason"].as_str().unwrap().contains("104.9041"));
    // repair: the bowtie becomes valid, the out-of-range point cannot be repaired.
    let run = ingest(&gpkg, &sample, "sample_repaired", &["--on-invalid", "repair"]);
    let s = &run.summary;
    assert_eq!(
        (s["features_loaded"].as_u64(), s["repaired"].as_u64(), s["skipped"].as_u64()),
        (Some(9), Some(1), Some(1))
    );
    if have_tool("ogr2ogr") {
        let out = std::process::Command::new("ogrinfo")
            .arg(&gpkg)
            .args([
                "-sql",
                "SELECT ST_IsValid(geom) AS ok, count(*) AS n FROM sample_repaired GROUP BY 1",
                "-dialect",
                "SQLite",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("ok (Integer) = 1") && !text.contains("ok (Integer) = 0"), "{text}");
    }
}

#[test]
fn text_sequences_ndjson_single_features_and_stdin() {
    let tmp = scratch();
    let gpkg = tmp.path().join("seq.gpkg");
    let f = |x: f64| {
        format!(r#"{{"type":"Feature","properties":{{"x":{x}}},"geometry":{{"type":"Point","coordinates":[{x},0]}}}}"#)
    };
    let rs = format!("\x1e{}\n\x1e{}\n\x1e{{\"type\":\"Feat\n\x1e{}\n", f(1.0), f(2.0), f(3.0));
    let run = ingest_stdin(&gpkg, rs.as_bytes(), "rs", &["--source", "rs.geojsons"]);
    assert_eq!(
        (run.summary["features_read"].as_u64(), run.summary["features_loaded"].as_u64()),
        (Some(4), Some(3)),
        "{}",
        run.summary
    );
    assert_eq!(run.summary["source"], "rs.geojsons");
    let nd = format!("{}\n{}\n", f(1.0), f(2.0));
    let p = write(tmp.path(), "x.json", &nd);
    assert_eq!(ingest(&gpkg, &p, "nd", &[]).summary["features_loaded"], json!(2));
    let single = write(tmp.path(), "one.txt", &f(4.0));
    assert_eq!(ingest(&gpkg, &single, "one", &[]).summary["features_loaded"], json!(1));
    let bare = write(tmp.path(), "bare", r#"{"type":"LineString","coordinates":[[0,0],[1,1]]}"#);
    let run = ingest(&gpkg, &bare, "bare", &[]);
    assert_eq!(run.summary["features_loaded"], json!(1));
    let null_geom = write(tmp.path(), "null.geojson", r#"{"type":"Feature","properties":{"a":1},"geometry":null}"#);
    assert_eq!(ingest(&gpkg, &null_geom, "nullgeom", &[]).summary["features_loaded"], json!(1));
    let conn = rusqlite::Connection::open(&gpkg).unwrap();
    let geom: Option<Vec<u8>> = conn.query_row("SELECT geom FROM nullgeom", [], |r| r.get(0)).unwrap();
    assert_eq!(geom, None, "a null geometry is stored as NULL");
}

#[test]
fn property_values_are_kept_exactly() {
    let tmp = scratch();
    let gpkg = tmp.path().join("p.gpkg");
    let text = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"big":9007199254740993,"mixed":1,"Name":"a","name":"b","nested":{"k":[1,"2",null]},"huge":123456789012345678901234567890,"f":0.1},"geometry":null},
      {"type":"Feature","properties":{"big":-9223372036854775808,"mixed":"one","Name":null,"f":2},"geometry":null}
    ]}"#;
    let p = write(tmp.path(), "p.geojson", text);
    let run = ingest(&gpkg, &p, "props", &[]);
    assert_eq!(run.code, 0, "{}", run.summary);
    let titles = column_titles(&gpkg, "props");
    assert_ne!(titles["Name"], titles["name"], "case-distinct keys stay distinct");
    let conn = rusqlite::Connection::open(&gpkg).unwrap();
    let get = |key: &str, row: i64| -> rusqlite::types::Value {
        conn.query_row(&format!("SELECT \"{}\" FROM props WHERE gf_feature_index = ?1", titles[key]), [row], |r| {
            r.get(0)
        })
        .unwrap()
    };
    use rusqlite::types::Value as V;
    assert_eq!(get("big", 0), V::Integer(9007199254740993));
    assert_eq!(get("big", 1), V::Integer(i64::MIN));
    assert_eq!(get("mixed", 0), V::Text("1".into()));
    assert_eq!(get("mixed", 1), V::Text("\"one\"".into()));
    assert_eq!(get("nested", 0), V::Text(r#"{"k":[1,"2",null]}"#.into()));
    assert_eq!(get("huge", 0), V::Text("123456789012345678901234567890".into()));
    assert_eq!(get("f", 0), V::Real(0.1));
    assert_eq!(get("f", 1), V::Real(2.0));
}

#[test]
fn bad_names_and_missing_files_give_clear_errors() {
    let tmp = scratch();
    let gpkg = tmp.path().join("e.gpkg");
    let out =
        geoflow().args(["ingest", "x.geojson", "--dataset", "Bad-Name", "--database"]).arg(&gpkg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid dataset name"));
    let run = ingest(&gpkg, &tmp.path().join("missing.geojson"), "m", &[]);
    assert_eq!((run.code, status(&run)), (1, "failed"));
    assert!(run.summary["error"].as_str().unwrap().contains("missing.geojson"));
    for sub in ["ingest", "migrate", "datasets"] {
        let help = geoflow().args([sub, "--help"]).output().unwrap();
        assert!(help.status.success() && !help.stdout.is_empty());
    }
}

fn points(xy: &[(f64, f64)]) -> String {
    let features: Vec<Value> = xy
        .iter()
        .enumerate()
        .map(|(i, (x, y))| json!({"type": "Feature", "id": i, "properties": {"n": i}, "geometry": {"type": "Point", "coordinates": [x, y]}}))
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

fn count_rows(gpkg: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(gpkg).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| r.get(0)).unwrap()
}

#[test]
fn a_load_killed_mid_write_leaves_the_previous_rows() {
    let tmp = scratch();
    let gpkg = tmp.path().join("k.gpkg");
    let src = tmp.path().join("src.geojson");
    std::fs::write(&src, points(&[(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)])).unwrap();
    assert_eq!(status(&ingest(&gpkg, &src, "kill", &[])), "loaded");
    // A much larger new version of the same source.
    let xy: Vec<(f64, f64)> = (0..400_000).map(|i| ((i % 3000) as f64 / 20.0, (i / 3000) as f64 / 20.0)).collect();
    std::fs::write(&src, points(&xy)).unwrap();
    let mut child = geoflow()
        .args(["ingest"])
        .arg(&src)
        .args(["--dataset", "kill", "--json", "--database"])
        .arg(&gpkg)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once rows are being written (the write-ahead log grows).
    let wal = tmp.path().join("k.gpkg-wal");
    let started = std::time::Instant::now();
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 4 << 20 {
        assert!(child.try_wait().unwrap().is_none(), "the load finished before it could be killed");
        assert!(started.elapsed().as_secs() < 120);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(count_rows(&gpkg, "kill"), 3, "the previous rows are intact and no partial rows remain");
    let conn = rusqlite::Connection::open(&gpkg).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    if have_tool("ogrinfo") {
        assert_eq!(ogr_layer(&gpkg, Some("kill")).0, 3);
    }
    // The next run loads the new version completely.
    let run = ingest(&gpkg, &src, "kill", &[]);
    assert_eq!(status(&run), "loaded", "{}", run.summary);
    assert_eq!(count_rows(&gpkg, "kill"), 400_000);
}

#[test]
fn legacy_crs_is_transformed_or_rejected_never_mislabelled() {
    let tmp = scratch();
    let gpkg = tmp.path().join("crs.gpkg");
    let mercator = write(
        tmp.path(),
        "mercator.geojson",
        r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3857"}},
            "features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1491681.2,6891041.7]}}]}"#,
    );
    let run = ingest(&gpkg, &mercator, "mercator", &[]);
    assert_eq!(status(&run), "loaded", "{}", run.summary);
    let conn = rusqlite::Connection::open(&gpkg).unwrap();
    let (x, y): (f64, f64) =
        conn.query_row("SELECT gf_min_x, gf_min_y FROM mercator", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert!((x - 13.4).abs() < 1e-5 && (y - 52.5).abs() < 1e-5, "stored as WGS84 lon/lat: {x} {y}");
    let british = write(
        tmp.path(),
        "osgb.geojson",
        r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::27700"}},
            "features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[530000,180000]}}]}"#,
    );
    // Any CRS PROJ knows is transformed, as pyproj (PROJ 9.1.1, always_xy) transforms it; the
    // summary names it and says that the OSTN15 grid would be more accurate.
    let run = ingest(&gpkg, &british, "osgb", &[]);
    assert_eq!(status(&run), "loaded", "{}", run.summary);
    assert_eq!(run.summary["source_crs"], "EPSG:27700 (OSGB36 / British National Grid)", "{}", run.summary);
    let notes = run.summary["notes"].to_string();
    assert!(notes.contains("uk_os_OSTN15_NTv2_OSGBtoETRS.tif"), "{notes}");
    let conn = rusqlite::Connection::open(&gpkg).unwrap();
    let (x, y): (f64, f64) =
        conn.query_row("SELECT gf_min_x, gf_min_y FROM osgb", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert!((x - -0.12835394047946935).abs() < 1e-9 && (y - 51.50399082763378).abs() < 1e-9, "{x} {y}");

    // The same bytes read under another CRS are another load, not a no-op.
    let again = ingest(&gpkg, &british, "osgb", &["--source-crs", "EPSG:32630"]);
    assert_eq!(status(&again), "loaded", "{}", again.summary);
    assert!(again.summary["source_crs"].as_str().unwrap().starts_with("EPSG:32630"), "{}", again.summary);

    // An unknown CRS is a clear, permanent refusal naming it.
    let unknown = write(
        tmp.path(),
        "unknown.geojson",
        r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"EPSG:99999"}},"features":[]}"#,
    );
    let run = ingest(&gpkg, &unknown, "unknown", &[]);
    assert_eq!((run.code, status(&run)), (3, "rejected"));
    let error = run.summary["error"].as_str().unwrap();
    assert!(error.contains("unknown.geojson") && error.contains("EPSG:99999"), "{error}");
    let run = ingest(&gpkg, &mercator, "mercator2", &["--source-crs", "EPSG:424242"]);
    assert_eq!((run.code, status(&run)), (3, "rejected"), "{}", run.summary);
}

#[test]
fn formats_are_told_by_content_and_unsupported_ones_are_named() {
    let tmp = scratch();
    let gpkg = tmp.path().join("formats.gpkg");
    let text = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{"name":"a"},"geometry":{"type":"Point","coordinates":[1,2]}}]}"#;
    // gzipped GeoJSON under a misleading name.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let gzipped = tmp.path().join("points.csv");
    std::fs::write(&gzipped, gz.finish().unwrap()).unwrap();
    let run = ingest(&gpkg, &gzipped, "gz", &[]);
    assert_eq!((status(&run), run.summary["features_loaded"].as_u64()), ("loaded", Some(1)), "{}", run.summary);
    assert_eq!(run.summary["format"], "gzip GeoJSON");
    // The same through stdin.
    let run = ingest_stdin(&gpkg, &std::fs::read(&gzipped).unwrap(), "gz_stdin", &[]);
    assert_eq!(status(&run), "loaded", "{}", run.summary);

    // Known formats geoflow does not read: one message saying what the file is.
    let cases: &[(&str, &[u8], &str)] = &[
        ("doc.geojson", b"<?xml version=\"1.0\"?><kml xmlns=\"http://www.opengis.net/kml/2.2\">", "a KML document"),
        ("roads.shp", b"\x00\x00\x27\x0a\x00\x00\x00\x00\x00\x00", "Shapefile .shp"),
        ("scan.json", b"%PDF-1.7\n", "a PDF document"),
    ];
    for (name, bytes, what) in cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let run = ingest(&gpkg, &path, "bad", &[]);
        assert_eq!((run.code, status(&run)), (3, "rejected"), "{name}: {}", run.summary);
        let error = run.summary["error"].as_str().unwrap();
        assert!(error.contains(name) && error.contains(what) && error.contains("does not read"), "{error}");
        assert_eq!(run.summary["error_class"], "bad-input", "{}", run.summary);
    }
    // Corrupt gzip is the file's fault too, never retried.
    let mut broken = std::fs::read(&gzipped).unwrap();
    broken.truncate(broken.len() / 2);
    let path = tmp.path().join("cut.geojson.gz");
    std::fs::write(&path, broken).unwrap();
    let run = ingest(&gpkg, &path, "cut", &[]);
    assert_eq!((run.code, status(&run)), (3, "rejected"), "{}", run.summary);
    assert!(run.summary["error"].as_str().unwrap().contains("gzip"), "{}", run.summary);
    // The same for a format read from a decompressed copy: a cut gzipped GeoPackage.
    if have_tool("ogr2ogr") {
        let source = write(tmp.path(), "points.geojson", text);
        let packaged = tmp.path().join("points.gpkg");
        let out =
            std::process::Command::new("ogr2ogr").args(["-f", "GPKG"]).arg(&packaged).arg(&source).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &std::fs::read(&packaged).unwrap()).unwrap();
        let whole = gz.finish().unwrap();
        let path = tmp.path().join("points.gpkg.gz");
        std::fs::write(&path, &whole).unwrap();
        let run = ingest(&gpkg, &path, "gz_gpkg", &[]);
        assert_eq!(
            (status(&run), run.summary["format"].as_str()),
            ("loaded", Some("gzip GeoPackage")),
            "{}",
            run.summary
        );
        std::fs::write(&path, &whole[..whole.len() * 2 / 3]).unwrap();
        let run = ingest(&gpkg, &path, "gz_gpkg_cut", &[]);
        assert_eq!((run.code, status(&run)), (3, "rejected"), "{}", run.summary);
    }
}

fn with_properties(features: &[Value]) -> String {
    let features: Vec<Value> = features
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [i as f64, 1.0]}, "properties": p})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[test]
fn the_summary_lists_every_schema_change_and_strict_rejects_a_type_change() {
    let tmp = scratch();
    let gpkg = tmp.path().join("s.gpkg");
    let a = write(tmp.path(), "a.geojson", &with_properties(&[json!({"pop": 5, "name": "x"})]));
    let first = ingest(&gpkg, &a, "towns", &["--mode", "append"]);
    assert_eq!(
        first.summary["schema_changes"],
        // In the file's key order.
        json!([
            {"change": "added", "column": "pop", "key": "pop", "to": "integer"},
            {"change": "added", "column": "name", "key": "name", "to": "text"},
        ]),
        "{}",
        first.summary
    );

    // One string in the integer column: strict rejects it, naming the column and the feature.
    let b = write(tmp.path(), "b.geojson", &with_properties(&[json!({"pop": 1}), json!({"pop": "many", "area": 2.5})]));
    let strict = ingest(&gpkg, &b, "towns", &["--schema-policy", "strict", "--mode", "append"]);
    assert_eq!((strict.code, status(&strict)), (3, "rejected"), "{}", strict.summary);
    let error = strict.summary["error"].as_str().unwrap();
    for part in ["feature 1", "\"pop\"", "integer", "json"] {
        assert!(error.contains(part), "{part} not in {error}");
    }
    assert_eq!(count_rows(&gpkg, "towns"), 1);

    // Widened by default, and reported with the new column.
    let widened = ingest(&gpkg, &b, "towns", &["--mode", "append"]);
    assert_eq!(status(&widened), "loaded");
    assert_eq!(
        widened.summary["schema_changes"],
        json!([
            {"change": "widened", "column": "pop", "key": "pop", "from": "integer", "to": "json"},
            {"change": "added", "column": "area", "key": "area", "to": "real"},
        ])
    );

    // A new version of b without "area": no row has a value there any more, so it goes.
    write(tmp.path(), "b.geojson", &with_properties(&[json!({"pop": 2})]));
    let replaced = ingest(&gpkg, &b, "towns", &["--mode", "append"]);
    assert_eq!(
        replaced.summary["schema_changes"],
        json!([{"change": "dropped", "column": "area", "key": "area", "from": "real"}])
    );
    let again = ingest(&gpkg, &a, "towns", &["--mode", "append"]);
    assert_eq!((status(&again), &again.summary["schema_changes"]), ("unchanged", &json!([])));
}

/// Runs `geoflow <args…> --database <gpkg>`: (exit code, stdout, stderr).
fn run(gpkg: &Path, args: &[&str]) -> (i32, String, String) {
    let out = geoflow().args(args).arg("--database").arg(gpkg).output().expect("geoflow runs");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(!stderr.contains("panicked"), "geoflow panicked: {stderr}");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn direct_loads_are_jobs_with_their_report() {
    let tmp = scratch();
    let gpkg = tmp.path().join("jobs.gpkg");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample.geojson");
    assert_eq!(ingest(&gpkg, &sample, "sample", &[]).code, 0);
    let bad = write(tmp.path(), "bad.geojson", r#"{"type":"FeatureCollection","features":[{"type":"Feature""#);
    assert_ne!(ingest(&gpkg, &bad, "sample", &["--source", "broken"]).code, 0);
    assert_eq!(ingest(&gpkg, &sample, "sample", &[]).code, 0, "the same content again");

    let (code, stdout, stderr) = run(&gpkg, &["jobs", "list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let jobs = json_of(&stdout);
    let jobs = jobs.as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = jobs
        .iter()
        .map(|j| (j["status"].as_str().unwrap(), j["source"].as_str().unwrap(), j["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("skipped-duplicate", "sample.geojson", "load"),
            ("failed", "broken", "load"),
            ("succeeded", "sample.geojson", "load")
        ],
        "newest first"
    );
    let first = &jobs[2];
    assert_eq!(first["attempts"], 1);
    assert!(first["load_id"].is_i64() && first["finished_at"].is_string(), "{first}");
    // The job's result is the load's report, as `ingest --json` prints it.
    assert_eq!(first["result"]["features_loaded"], 8);
    assert_eq!(first["result"]["errors"][0]["id"], "bad-bowtie");
    assert!(jobs[1]["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", jobs[1]);

    let (code, stdout, _) = run(&gpkg, &["jobs", "list", "--status", "failed", "--dataset", "sample", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(json_of(&stdout).as_array().map(Vec::len), Some(1));
    let (_, stdout, _) = run(&gpkg, &["jobs", "list", "--limit", "1"]);
    assert_eq!(stdout.lines().count(), 2, "a header and one job: {stdout}");
    assert!(stdout.contains("skipped-duplicate"), "{stdout}");

    let id = first["id"].as_str().unwrap();
    let (code, stdout, _) = run(&gpkg, &["jobs", "show", id, "--json"]);
    assert_eq!((code, &json_of(&stdout)["result"]["skipped"]), (0, &json!(2)));
    let (code, stdout, _) = run(&gpkg, &["jobs", "show", id]);
    assert_eq!(code, 0);
    assert!(stdout.contains("succeeded") && stdout.contains("feature 8 (id bad-bowtie)"), "{stdout}");
    let (code, _, stderr) = run(&gpkg, &["jobs", "show", "no-such-job"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no job"), "{stderr}");
}

#[test]
fn datasets_and_sources_are_listed_and_removed_from_the_command_line() {
    let tmp = scratch();
    let gpkg = tmp.path().join("cli.gpkg");
    let a = write(tmp.path(), "a.geojson", &points(&[(1.0, 1.0), (2.0, 2.0)]));
    let b = write(tmp.path(), "b.geojson", &points(&[(3.0, 3.0)]));
    for (file, dataset) in [(&a, "roads"), (&b, "roads"), (&a, "parks")] {
        assert_eq!(ingest(&gpkg, file, dataset, &["--no-progress", "--mode", "append"]).code, 0);
    }

    // Bare `datasets` lists, as `datasets list` does.
    let (code, bare, _) = run(&gpkg, &["datasets"]);
    assert_eq!(code, 0);
    assert_eq!(run(&gpkg, &["datasets", "list"]).1, bare);
    assert!(bare.contains("roads") && bare.contains("parks"), "{bare}");
    let (_, listed, _) = run(&gpkg, &["datasets", "list", "--json"]);
    assert_eq!(json_of(&listed).as_array().map(Vec::len), Some(2));

    let (code, stdout, _) = run(&gpkg, &["sources", "list", "roads", "--json"]);
    assert_eq!(code, 0);
    let sources: Vec<(String, u64)> = json_of(&stdout)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap().to_string(), s["feature_count"].as_u64().unwrap()))
        .collect();
    assert_eq!(sources, [("a.geojson".to_string(), 2), ("b.geojson".to_string(), 1)]);
    let (_, table, _) = run(&gpkg, &["sources", "list", "roads"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("a.geojson")), "{table}");
    assert_eq!(run(&gpkg, &["sources", "list", "nosuch"]).0, 1);

    let (code, _, stderr) = run(&gpkg, &["sources", "rm", "roads", "a.geojson"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count_rows(&gpkg, "roads"), 1);
    // The removal is a job, listed with the loads.
    let (_, jobs, _) = run(&gpkg, &["jobs", "list", "--dataset", "roads", "--json"]);
    let removal = json_of(&jobs).as_array().unwrap().iter().find(|j| j["action"] == "remove").cloned();
    let removal = removal.unwrap_or_else(|| panic!("no removal job: {jobs}"));
    assert_eq!((&removal["status"], &removal["result"]["removed_rows"]), (&json!("succeeded"), &json!(2)), "{removal}");
    let (code, _, stderr) = run(&gpkg, &["sources", "rm", "roads", "a.geojson"]);
    assert_eq!(code, 1, "already gone");
    assert!(stderr.contains("no source"), "{stderr}");

    let (code, _, stderr) = run(&gpkg, &["datasets", "drop", "roads"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 sources, 1 features"), "{stderr}");
    let (_, jobs, _) = run(&gpkg, &["jobs", "list", "--dataset", "roads", "--json"]);
    let dropped = json_of(&jobs).as_array().unwrap().iter().find(|j| j["action"] == "drop").cloned();
    let dropped = dropped.unwrap_or_else(|| panic!("no drop job: {jobs}"));
    assert_eq!((&dropped["status"], &dropped["source"]), (&json!("succeeded"), &json!("*")), "{dropped}");
    assert_eq!((&dropped["result"]["sources"], &dropped["result"]["removed_rows"]), (&json!(1), &json!(1)));
    let (_, listed, _) = run(&gpkg, &["datasets", "--json"]);
    let names: Vec<Value> = json_of(&listed).as_array().unwrap().iter().map(|d| d["name"].clone()).collect();
    assert_eq!(names, [json!("parks")]);
    let conn = rusqlite::Connection::open(&gpkg).unwrap();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master WHERE name IN ('roads', 'rtree_roads_geom')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0);
    let (code, _, stderr) = run(&gpkg, &["datasets", "drop", "roads"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no dataset"), "{stderr}");
    assert_ne!(run(&gpkg, &["datasets", "drop", "Not-A-Name"]).0, 0);

    // With --objects, the dataset's objects under raw/<dataset>/ go too, and no others.
    let objects = tmp.path().join("objects");
    for key in ["raw/parks/2026-12-01/a.geojson", "raw/parks/2026-12-02/x/b.geojson", "raw/parkside/c.geojson"] {
        std::fs::create_dir_all(objects.join(key).parent().unwrap()).unwrap();
        std::fs::write(objects.join(key), "{}").unwrap();
    }
    let storage = objects.to_str().unwrap();
    let (code, _, stderr) = run(&gpkg, &["datasets", "drop", "parks", "--objects", "--storage", storage]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("deleted 2 objects"), "{stderr}");
    assert!(!objects.join("raw/parks/2026-12-01/a.geojson").exists());
    assert!(objects.join("raw/parkside/c.geojson").exists());
    let (_, listed, _) = run(&gpkg, &["datasets", "--json"]);
    assert_eq!(json_of(&listed), json!([]));
}

/// Piped into a reader that leaves at once (`geoflow ingest … --json | head -c0`), the command
/// ends quietly, as `cat` does, with its load committed: no panic on the broken pipe.
#[test]
fn a_reader_that_leaves_early_does_not_make_the_command_panic() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = scratch();
    let gpkg = tmp.path().join("p.gpkg");
    let file = write(tmp.path(), "a.geojson", &with_properties(&[json!({"name": "x"})]));
    for args in [vec!["ingest", file.to_str().unwrap(), "--dataset", "piped", "--json"], vec!["datasets"]] {
        let mut child = support::geoflow()
            .args(&args)
            .arg("--database")
            .arg(&gpkg)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!said.contains("panicked"), "{args:?}: {said}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {said}",
            out.status
        );
    }
    let listed = support::geoflow().args(["datasets", "--database"]).arg(&gpkg).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("piped"), "the load was committed");
}
