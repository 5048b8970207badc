//! Zipped Shapefiles: Natural Earth round trips through `ogr2ogr` (WGS84 and projected),
//! archives with several layers or none, code pages, and broken input.

use std::fs::File;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use geoflow_core::feature::{parse_feature, Parts};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::value::PropValue;
use geoflow_formats::{open, RawFeature, ReadError, ReadOptions, SourceInfo};
use proptest::prelude::*;

/// `../shared` beside the repository (or `GEOFLOW_SHARED_DIR`); `None`, with the reason
/// printed, when absent, unless `GEOFLOW_REQUIRE_SHARED=1`.
fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GEOFLOW_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if dir.join("data/naturalearth").is_dir() {
        return Some(dir);
    }
    if std::env::var("GEOFLOW_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("GEOFLOW_REQUIRE_SHARED=1 but the shared test data is missing at {}", dir.display());
    }
    eprintln!("skipped: shared test data not found at {} (set GEOFLOW_SHARED_DIR)", dir.display());
    None
}

/// Whether `ogr2ogr` is installed; skipped with a printed reason unless
/// `GEOFLOW_REQUIRE_TOOLS=1`.
fn have_ogr2ogr() -> bool {
    let found = Command::new("ogr2ogr").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        if std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("GEOFLOW_REQUIRE_TOOLS=1 but ogr2ogr is not installed");
        }
        eprintln!("skipped: ogr2ogr is not installed");
    }
    found
}

fn ogr2ogr(args: &[&str]) {
    let out = Command::new("ogr2ogr").args(args).output().expect("ogr2ogr runs");
    assert!(out.status.success(), "ogr2ogr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Zips the files of `dir` (under `folder/` in the archive) into `out`.
fn zip_dir(dir: &Path, folder: &str, out: &Path) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let files: Vec<(String, Vec<u8>)> = entries
        .iter()
        .map(|p| (format!("{folder}{}", p.file_name().unwrap().to_string_lossy()), std::fs::read(p).unwrap()))
        .collect();
    std::fs::write(out, zip_bytes(&files, true)).unwrap();
}

fn zip_bytes(files: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in files {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn read_path(path: &Path, options: &ReadOptions) -> Result<(SourceInfo, Vec<RawFeature>), ReadError> {
    let mut file = File::open(path).unwrap();
    let source = open(&mut file, path, options)?;
    let mut features = Vec::new();
    let mut source = source;
    for feature in source.by_ref() {
        features.push(feature?);
    }
    Ok((source.info(), features))
}

/// Opens `bytes` (written to a file) and reads every feature: features or an error, never a
/// panic.
fn read_bytes(bytes: &[u8], scratch: &Path) -> Result<usize, ReadError> {
    let path = scratch.join("input.bin");
    std::fs::write(&path, bytes).unwrap();
    let options = ReadOptions { scratch_dir: Some(scratch.to_path_buf()), ..Default::default() };
    read_path(&path, &options).map(|(_, features)| features.len())
}

/// A feature's geometry in WGS84 and its properties.
fn wgs84(raw: &RawFeature) -> (Option<Geom>, Vec<(String, PropValue)>) {
    match &raw.decoded {
        Some(decoded) => {
            let mut geometry = decoded.geometry.clone();
            if let Some(g) = geometry.as_mut() {
                raw.transform.apply_to(g).unwrap();
            }
            (geometry, decoded.properties.clone())
        }
        None => {
            let mut properties = Vec::new();
            let parsed =
                parse_feature(&raw.bytes, &raw.transform, Parts::All, |k, v| properties.push((k.to_string(), v)));
            (parsed.geometry, properties)
        }
    }
}

/// Every geometry as a list of polygons/lines/points (a Shapefile makes a one-part
/// MultiPolygon a Polygon, and has no single-part and multi-part types of its own).
fn parts(g: &Geom) -> Vec<Vec<Vec<Pos>>> {
    match g {
        Geom::Point(p) => vec![vec![vec![*p]]],
        Geom::MultiPoint(ps) => ps.iter().map(|p| vec![vec![*p]]).collect(),
        Geom::LineString(l) => vec![vec![l.clone()]],
        Geom::MultiLineString(ls) => ls.iter().map(|l| vec![l.clone()]).collect(),
        Geom::Polygon(rings) => vec![rings.clone()],
        Geom::MultiPolygon(polygons) => polygons.clone(),
        Geom::GeometryCollection(_) => panic!("a Shapefile holds no collections"),
    }
}

fn close(a: &[Pos], b: &[Pos], tolerance: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(p, q)| (p.x - q.x).abs() <= tolerance && (p.y - q.y).abs() <= tolerance)
}

/// The same geometry within `tolerance` degrees; rings may run either way (Shapefile outer
/// rings are clockwise, RFC 7946's counter-clockwise).
fn assert_same_geometry(expected: &Geom, got: &Geom, tolerance: f64, what: &str) {
    let (expected, got) = (parts(expected), parts(got));
    assert_eq!(expected.len(), got.len(), "{what}: parts");
    for (e, g) in expected.iter().zip(&got) {
        assert_eq!(e.len(), g.len(), "{what}: rings");
        for (er, gr) in e.iter().zip(g) {
            let reversed: Vec<Pos> = gr.iter().rev().copied().collect();
            assert!(close(er, gr, tolerance) || close(er, &reversed, tolerance), "{what}: {er:?} vs {gr:?}");
        }
    }
}

/// The same value, allowing what a DBF forces: integers and reals both as numbers (a real
/// column printed with 15 decimals), empty text as null (DBF cannot tell them apart), text
/// cut at 254 bytes and stripped of trailing blanks, booleans as integers.
fn assert_same_value(expected: &PropValue, got: &PropValue, what: &str) {
    let number = |v: &PropValue| match v {
        PropValue::Int(i) => Some(*i as f64),
        PropValue::Real(r) => Some(*r),
        PropValue::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    match (expected, got) {
        (PropValue::Text(e), PropValue::Null) if e.trim_end().is_empty() => {}
        (PropValue::Text(e), PropValue::Text(g)) => {
            let e = e.trim_end();
            if e.len() > 254 {
                assert!(e.starts_with(g.as_str()), "{what}: {e:?} vs {g:?}");
            } else {
                assert_eq!(e, g, "{what}");
            }
        }
        // Lists and objects become text of GDAL's own making.
        (PropValue::Json(_), _) => {}
        (e, g) => match (number(e), number(g)) {
            (Some(e), Some(g)) => assert!((e - g).abs() <= 1e-9 * e.abs().max(1.0), "{what}: {e} vs {g}"),
            _ => assert_eq!(e, g, "{what}"),
        },
    }
}

/// Reads `geojson` and `zip` and compares them feature by feature.
fn assert_same_features(geojson: &Path, zip: &Path, tolerance: f64) -> SourceInfo {
    let options = ReadOptions::default();
    let (_, expected) = read_path(geojson, &options).unwrap();
    let (info, got) = read_path(zip, &options).unwrap_or_else(|e| panic!("{}: {e}", zip.display()));
    assert_eq!(info.format, "Shapefile");
    assert_eq!(expected.len(), got.len(), "{}: feature count", zip.display());
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(g.index, i as u64);
        let what = format!("{} feature {i}", zip.display());
        let (eg, ep) = wgs84(e);
        let (gg, gp) = wgs84(g);
        match (&eg, &gg) {
            (Some(eg), Some(gg)) => assert_same_geometry(eg, gg, tolerance, &what),
            (None, None) => {}
            _ => panic!("{what}: {eg:?} vs {gg:?}"),
        }
        // DBF field names are cut to 10 characters (and made unique by GDAL): the columns
        // keep their order, so values are compared by position.
        assert_eq!(ep.len(), gp.len(), "{what}: properties {ep:?} vs {gp:?}");
        for ((ek, ev), (gk, gv)) in ep.iter().zip(&gp) {
            assert!(gk.len() <= 10, "{what}: field name {gk}");
            if ek.len() <= 10 && ek.is_ascii() {
                assert!(ek.eq_ignore_ascii_case(gk), "{what}: {ek} vs {gk}");
            }
            assert_same_value(ev, gv, &format!("{what} property {ek}"));
        }
    }
    info
}

#[test]
fn natural_earth_round_trips() {
    let Some(shared) = shared_dir() else { return };
    if !have_ogr2ogr() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(shared.join("data/naturalearth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    for input in &inputs {
        let stem = input.file_stem().unwrap().to_string_lossy().to_string();
        let dir = scratch.path().join(&stem);
        std::fs::create_dir(&dir).unwrap();
        ogr2ogr(&["-f", "ESRI Shapefile", "-lco", "ENCODING=UTF-8", dir.to_str().unwrap(), input.to_str().unwrap()]);
        // Named .bin: the format is told by content.
        let zipped = scratch.path().join(format!("{stem}.bin"));
        zip_dir(&dir, "", &zipped);
        let info = assert_same_features(input, &zipped, 1e-9);
        assert_eq!(info.layer.as_deref(), Some(stem.as_str()));
        assert_eq!(info.source_crs, None, "{stem}: WGS84 needs no transform");
    }

    // Projected: the lakes in Web Mercator, the British ports in the British National Grid.
    let lakes = shared.join("data/naturalearth/ne_10m_lakes_north_america.geojson");
    let dir = scratch.path().join("lakes_3857");
    std::fs::create_dir(&dir).unwrap();
    ogr2ogr(&["-f", "ESRI Shapefile", "-t_srs", "EPSG:3857", dir.to_str().unwrap(), lakes.to_str().unwrap()]);
    let zipped = scratch.path().join("lakes_3857.zip");
    zip_dir(&dir, "lakes/", &zipped);
    let info = assert_same_features(&lakes, &zipped, 1e-6);
    assert!(info.source_crs.is_some(), "{info:?}");

    let ports = shared.join("data/naturalearth/ne_10m_ports.geojson");
    let uk_ports = scratch.path().join("uk_ports.geojson");
    ogr2ogr(&[
        "-f",
        "GeoJSON",
        "-spat",
        "-8",
        "49.8",
        "2",
        "60.9",
        uk_ports.to_str().unwrap(),
        ports.to_str().unwrap(),
    ]);
    let dir = scratch.path().join("ports_27700");
    std::fs::create_dir(&dir).unwrap();
    ogr2ogr(&["-f", "ESRI Shapefile", "-t_srs", "EPSG:27700", dir.to_str().unwrap(), uk_ports.to_str().unwrap()]);
    let zipped = scratch.path().join("ports_27700.zip");
    zip_dir(&dir, "", &zipped);
    let info = assert_same_features(&uk_ports, &zipped, 1e-6);
    assert!(info.source_crs.as_deref().is_some_and(|c| c.contains("27700") || c.contains("British")), "{info:?}");
}

const POINTS: &str = r#"{"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{"name":"Köln","n":1,"when":"2024-05-01"},"geometry":{"type":"Point","coordinates":[6.96,50.94]}},
    {"type":"Feature","properties":{"name":"São Paulo","n":2,"when":null},"geometry":{"type":"Point","coordinates":[-46.63,-23.55]}}
]}"#;

const LINES: &str = r#"{"type":"FeatureCollection","features":[
    {"type":"Feature","properties":{"road":"A1"},"geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}},
    {"type":"Feature","properties":{"road":"A2"},"geometry":{"type":"MultiLineString","coordinates":[[[0,0],[1,1]],[[2,2],[3,3]]]}},
    {"type":"Feature","properties":{"road":"A3"},"geometry":{"type":"LineString","coordinates":[[5,5],[6,6]]}}
]}"#;

/// `geojson` as a Shapefile named `name` in `dir`, with extra `ogr2ogr` arguments.
fn shapefile(dir: &Path, name: &str, geojson: &str, extra: &[&str]) {
    let input = dir.join(format!("{name}.geojson"));
    std::fs::write(&input, geojson).unwrap();
    let out = dir.join(format!("{name}.shp"));
    let mut args = vec!["-f", "ESRI Shapefile"];
    args.extend_from_slice(extra);
    args.extend([out.to_str().unwrap(), input.to_str().unwrap()]);
    ogr2ogr(&args);
    std::fs::remove_file(input).unwrap();
}

/// A 2D point (NaN z values do not compare equal).
fn assert_point(geometry: Option<Geom>, x: f64, y: f64) {
    match geometry {
        Some(Geom::Point(p)) => assert!(p.x == x && p.y == y && !p.has_z(), "{p:?}"),
        other => panic!("{other:?}"),
    }
}

fn message(e: ReadError) -> String {
    e.to_string()
}

#[test]
fn several_layers_load_together_or_one_by_the_layer_option() {
    if !have_ogr2ogr() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("layers");
    std::fs::create_dir(&dir).unwrap();
    shapefile(&dir, "towns", POINTS, &[]);
    shapefile(&dir, "Roads", LINES, &["-t_srs", "EPSG:3857"]);
    let zipped = scratch.path().join("two.zip");
    zip_dir(&dir, "data/", &zipped);

    // No layer chosen: every Shapefile, in the archive's order, each feature with its layer
    // and its index in it.
    let (info, features) = read_path(&zipped, &ReadOptions::default()).unwrap();
    let seen: Vec<(Option<&str>, u64)> = features.iter().map(|f| (f.layer.as_deref(), f.index)).collect();
    assert_eq!(
        seen,
        vec![(Some("Roads"), 0), (Some("Roads"), 1), (Some("Roads"), 2), (Some("towns"), 0), (Some("towns"), 1)]
    );
    assert_point(wgs84(&features[3]).0, 6.96, 50.94);
    let (geometry, _) = wgs84(&features[2]);
    match geometry {
        Some(Geom::LineString(line)) => assert!((line[0].x - 5.0).abs() < 1e-9 && (line[1].y - 6.0).abs() < 1e-9),
        other => panic!("{other:?}"),
    }
    let read: Vec<(&str, u64, bool)> =
        info.layers.iter().map(|l| (l.name.as_str(), l.features, l.source_crs.is_some())).collect();
    // The towns are in WGS84 already: nothing to transform.
    assert_eq!(read, vec![("Roads", 3, true), ("towns", 2, false)]);
    // Two CRSs: the source has none of its own.
    assert_eq!((info.format.as_str(), info.layer.as_deref(), info.source_crs.as_deref()), ("Shapefile", None, None));

    // Each layer on its own, as a zip of its members.
    assert_eq!(geoflow_formats::layers(&zipped).unwrap(), vec!["Roads".to_string(), "towns".to_string()]);
    let roads = scratch.path().join("roads-only.zip");
    geoflow_formats::extract_layer(&zipped, "roads", &roads).unwrap();
    assert_eq!(geoflow_formats::layers(&roads).unwrap(), vec!["Roads".to_string()]);
    let (info, features) = read_path(&roads, &ReadOptions::default()).unwrap();
    assert_eq!((info.layer.as_deref(), features.len(), features[0].layer.as_deref()), (Some("Roads"), 3, None));
    assert!(info.source_crs.is_some(), "the .prj travels with the layer: {info:?}");
    let error = message(geoflow_formats::extract_layer(&zipped, "rivers", &roads).unwrap_err());
    assert!(error.contains("\"rivers\""), "{error}");

    let options = ReadOptions { layer: Some("roads".into()), ..Default::default() };
    let (info, features) = read_path(&zipped, &options).unwrap();
    assert_eq!((info.format.as_str(), info.layer.as_deref(), features.len()), ("Shapefile", Some("Roads"), 3));
    let (geometry, properties) = wgs84(&features[1]);
    assert!(matches!(geometry, Some(Geom::MultiLineString(ref l)) if l.len() == 2), "{geometry:?}");
    assert_eq!(properties, vec![("road".to_string(), PropValue::Text("A2".into()))]);

    let options = ReadOptions { layer: Some("TOWNS.shp".into()), ..Default::default() };
    let (_, features) = read_path(&zipped, &options).unwrap();
    let (geometry, properties) = wgs84(&features[0]);
    assert_point(geometry, 6.96, 50.94);
    assert_eq!(
        properties,
        vec![
            ("name".to_string(), PropValue::Text("Köln".into())),
            ("n".to_string(), PropValue::Int(1)),
            ("when".to_string(), PropValue::Text("2024-05-01".into())),
        ]
    );
    assert_eq!(wgs84(&features[1]).1[2], ("when".to_string(), PropValue::Null));

    let options = ReadOptions { layer: Some("rivers".into()), ..Default::default() };
    let error = message(read_path(&zipped, &options).unwrap_err());
    assert!(error.contains("\"rivers\"") && error.contains("\"Roads\"") && error.contains("\"towns\""), "{error}");
}

#[test]
fn a_latin1_table_is_decoded_by_its_cpg_or_language_driver() {
    if !have_ogr2ogr() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("latin1");
    std::fs::create_dir(&dir).unwrap();
    shapefile(&dir, "towns", POINTS, &["-lco", "ENCODING=ISO-8859-1"]);
    let dbf = std::fs::read(dir.join("towns.dbf")).unwrap();
    assert!(dbf.windows(4).any(|w| w == b"K\xf6ln"), "the table holds Latin-1 bytes");
    let names = |zipped: &Path| -> Vec<PropValue> {
        let (_, features) = read_path(zipped, &ReadOptions::default()).unwrap();
        features.iter().map(|f| wgs84(f).1[0].1.clone()).collect()
    };
    let expected = vec![PropValue::Text("Köln".into()), PropValue::Text("São Paulo".into())];

    std::fs::write(dir.join("towns.cpg"), "ISO-8859-1\n").unwrap();
    let zipped = scratch.path().join("cpg.zip");
    zip_dir(&dir, "", &zipped);
    assert_eq!(names(&zipped), expected);

    // Without a .cpg: the language driver GDAL wrote (87, ISO-8859-1).
    std::fs::remove_file(dir.join("towns.cpg")).unwrap();
    let zipped = scratch.path().join("ldid.zip");
    zip_dir(&dir, "", &zipped);
    assert_eq!(names(&zipped), expected);

    // A .cpg naming another code page wins over the language driver.
    std::fs::write(dir.join("towns.cpg"), "866").unwrap();
    let zipped = scratch.path().join("cp866.zip");
    zip_dir(&dir, "", &zipped);
    assert_eq!(names(&zipped)[0], PropValue::Text("KЎln".into()));
}

#[test]
fn a_shp_alone_or_missing_its_table_is_named() {
    if !have_ogr2ogr() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("roads");
    std::fs::create_dir(&dir).unwrap();
    shapefile(&dir, "roads", LINES, &[]);
    let shp = std::fs::read(dir.join("roads.shp")).unwrap();
    let shx = std::fs::read(dir.join("roads.shx")).unwrap();
    let cases = [
        (vec![("roads.shp".to_string(), shp.clone())], "roads.shp has no roads.shx or roads.dbf beside it"),
        (
            vec![("x/roads.shp".to_string(), shp.clone()), ("x/roads.shx".to_string(), shx.clone())],
            "roads.shp has no roads.dbf beside it",
        ),
    ];
    for (files, expected) in cases {
        let error = read_bytes(&zip_bytes(&files, true), scratch.path()).unwrap_err();
        let error = message(error);
        assert!(error.contains("Shapefile") && error.contains(expected), "{error}");
    }
    // Upper-case extensions, a hidden file and macOS metadata beside them.
    let dbf = std::fs::read(dir.join("roads.dbf")).unwrap();
    let files = vec![
        ("__MACOSX/._ROADS.SHP".to_string(), b"junk".to_vec()),
        (".hidden.shp".to_string(), b"junk".to_vec()),
        ("ROADS.SHP".to_string(), shp),
        ("ROADS.SHX".to_string(), shx),
        ("ROADS.DBF".to_string(), dbf),
    ];
    assert_eq!(read_bytes(&zip_bytes(&files, false), scratch.path()).unwrap(), 3);
}

#[test]
fn a_zip_without_a_shapefile_reads_its_one_file_or_says_what_it_holds() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("points.zip");
    std::fs::write(&path, zip_bytes(&[("folder/points.json".to_string(), POINTS.as_bytes().to_vec())], true)).unwrap();
    let options = ReadOptions { scratch_dir: Some(scratch.path().to_path_buf()), ..Default::default() };
    let (info, features) = read_path(&path, &options).unwrap();
    assert_eq!((info.format.as_str(), features.len()), ("zip GeoJSON", 2));
    assert_point(wgs84(&features[1]).0, -46.63, -23.55);

    type Case<'a> = (Vec<(&'a str, &'a [u8])>, &'a str);
    let cases: [Case; 5] = [
        (vec![("doc.kml", b"<kml/>")], "KMZ"),
        (vec![("[Content_Types].xml", b"<x/>"), ("xl/workbook.xml", b"<x/>")], "Excel workbook"),
        (vec![("a.geojson", POINTS.as_bytes()), ("b.geojson", POINTS.as_bytes())], "a.geojson, b.geojson"),
        (vec![], "no vector data"),
        (vec![("report.pdf", b"%PDF-1.7")], "PDF"),
    ];
    for (files, expected) in cases {
        let files: Vec<(String, Vec<u8>)> = files.iter().map(|(n, b)| (n.to_string(), b.to_vec())).collect();
        let error = message(read_bytes(&zip_bytes(&files, true), scratch.path()).unwrap_err());
        assert!(error.contains(expected) && error.contains("zip"), "{expected}: {error}");
    }
    let inner = zip_bytes(&[("a.geojson".to_string(), POINTS.as_bytes().to_vec())], true);
    let error = message(read_bytes(&zip_bytes(&[("inner.zip".to_string(), inner)], true), scratch.path()).unwrap_err());
    assert!(error.contains("zip archive inside a zip archive"), "{error}");
    // Nothing is left behind in the scratch folder but the inputs written here.
    let left: Vec<String> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("geoflow-unpack-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Archive members: names and bytes.
type Members = Vec<(String, Vec<u8>)>;

/// A zipped Shapefile of `LINES` and the bytes of its files (made once: `None` without
/// ogr2ogr).
fn sample() -> Option<(Vec<u8>, Members)> {
    static SAMPLE: std::sync::OnceLock<Option<(Vec<u8>, Members)>> = std::sync::OnceLock::new();
    SAMPLE
        .get_or_init(|| {
            if !have_ogr2ogr() {
                return None;
            }
            let scratch = tempfile::tempdir().unwrap();
            shapefile(scratch.path(), "roads", LINES, &[]);
            let files: Vec<(String, Vec<u8>)> = ["shp", "shx", "dbf", "prj"]
                .iter()
                .map(|e| (format!("roads.{e}"), std::fs::read(scratch.path().join(format!("roads.{e}"))).unwrap()))
                .collect();
            Some((zip_bytes(&files, true), files))
        })
        .clone()
}

/// A failure names the format and what is wrong.
fn assert_clear(result: Result<usize, ReadError>) {
    // The GeoJSON reader's own errors (garbage starting with `{`) say where, by byte offset.
    if let Err(e @ (ReadError::Io(_) | ReadError::Unreadable(_))) = &result {
        let text = e.to_string();
        assert!(
            ["zip", "Shapefile", "GeoJSON", "CSV", "geoflow does not read", "JSON", "CRS"]
                .iter()
                .any(|w| text.contains(w)),
            "{text}"
        );
    }
}

#[test]
fn truncated_archives_and_members_fail_cleanly() {
    let Some((zipped, files)) = sample() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let mut cuts: Vec<usize> = (0..zipped.len().min(4096)).collect();
    cuts.extend([zipped.len() - 1, zipped.len() - 22, zipped.len() / 2]);
    for cut in cuts {
        let result = read_bytes(&zipped[..cut], scratch.path());
        if cut >= 4 {
            let e = result.expect_err("a cut archive is refused");
            assert!(e.to_string().contains("zip"), "{cut}: {e}");
        } else {
            assert_clear(result);
        }
    }
    // Each member cut short inside an intact archive.
    for member in 0..3 {
        let len = files[member].1.len();
        for cut in (0..len).step_by(7).chain([len - 1]) {
            let mut cut_files = files.clone();
            cut_files[member].1.truncate(cut);
            let result = read_bytes(&zip_bytes(&cut_files, false), scratch.path());
            if let Err(e) = &result {
                assert!(e.to_string().contains("Shapefile"), "{} cut at {cut}: {e}", files[member].0);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn flipped_bits_never_panic(member in 0usize..5, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let Some((zipped, mut files)) = sample() else { return Ok(()) };
        let scratch = tempfile::tempdir().unwrap();
        let bytes = if member == 4 {
            let mut z = zipped;
            let i = at.index(z.len());
            z[i] ^= 1 << bit;
            z
        } else {
            let i = at.index(files[member].1.len());
            files[member].1[i] ^= 1 << bit;
            zip_bytes(&files, false)
        };
        assert_clear(read_bytes(&bytes, scratch.path()));
    }

    #[test]
    fn garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..2048), zip_magic in any::<bool>()) {
        let scratch = tempfile::tempdir().unwrap();
        let mut bytes = if zip_magic { b"PK\x03\x04".to_vec() } else { Vec::new() };
        bytes.extend(body);
        assert_clear(read_bytes(&bytes, scratch.path()));
    }

    #[test]
    fn garbage_members_never_panic(
        shp in prop::collection::vec(any::<u8>(), 0..512),
        shx in prop::collection::vec(any::<u8>(), 0..256),
        dbf in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let scratch = tempfile::tempdir().unwrap();
        // Valid headers, garbage after them, so that the record decoding is reached.
        let mut shp_bytes = vec![0, 0, 0x27, 0x0a];
        shp_bytes.resize(24, 0);
        shp_bytes.extend_from_slice(&((100 + shp.len() as u32) / 2).to_be_bytes());
        shp_bytes.extend_from_slice(&1000u32.to_le_bytes());
        shp_bytes.extend_from_slice(&5u32.to_le_bytes());
        shp_bytes.resize(100, 0);
        shp_bytes.extend(shp);
        let mut shx_bytes = shp_bytes[..100].to_vec();
        shx_bytes[24..28].copy_from_slice(&((100 + shx.len() as u32) / 2).to_be_bytes());
        shx_bytes.extend(shx);
        let files = vec![
            ("g.shp".to_string(), shp_bytes),
            ("g.shx".to_string(), shx_bytes),
            ("g.dbf".to_string(), dbf),
        ];
        assert_clear(read_bytes(&zip_bytes(&files, false), scratch.path()));
    }
}

#[test]
fn a_zip_read_from_a_stream_is_spooled_when_gzipped() {
    // A gzipped zip: decompressed to the scratch folder, then read as a zip.
    let scratch = tempfile::tempdir().unwrap();
    let zipped = zip_bytes(&[("p.geojson".to_string(), POINTS.as_bytes().to_vec())], true);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&zipped).unwrap();
    let path = scratch.path().join("p.zip.gz");
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let options = ReadOptions { scratch_dir: Some(scratch.path().to_path_buf()), ..Default::default() };
    let (info, features) = read_path(&path, &options).unwrap();
    assert_eq!((info.format.as_str(), features.len()), ("gzip zip GeoJSON", 2));
    let mut f = File::open(&path).unwrap();
    let mut head = [0u8; 2];
    f.read_exact(&mut head).unwrap();
    assert_eq!(head, [0x1f, 0x8b]);
}
