//! GeoParquet: files written by pyarrow and shapely (`geoparquet_fixtures.py`) read back
//! type by type, the Natural Earth files compared with their GeoJSON, and corrupt files.
//!
//! The fixtures need a Python with pyarrow, shapely and pyproj: `GEOFLOW_PYARROW_PYTHON`, or
//! `/var/tmp/geoflow-pyarrow/bin/python`. Without one the tests that need it say so and pass,
//! unless `GEOFLOW_REQUIRE_TOOLS=1`. The bad-input tests read the committed
//! `tests/data/geoparquet/small.parquet` and always run.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use geoflow_core::feature::{parse_feature, Parts};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::report::ProblemCode;
use geoflow_core::value::PropValue;
use geoflow_formats::{open, RawFeature, ReadError, ReadOptions, SourceInfo};
use proptest::prelude::*;

const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/geoparquet/small.parquet");
const FIXTURES_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/geoparquet_fixtures.py");

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// The Python that writes the fixtures, if there is one.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let candidate = std::env::var_os("GEOFLOW_PYARROW_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp/geoflow-pyarrow/bin/python"));
            let works = Command::new(&candidate)
                .args(["-c", "import pyarrow, shapely, pyproj"])
                .output()
                .is_ok_and(|out| out.status.success());
            works.then_some(candidate)
        })
        .clone()
        .or_else(|| {
            let why = "no Python with pyarrow, shapely and pyproj (set GEOFLOW_PYARROW_PYTHON, or: python3 -m venv \
                       /var/tmp/geoflow-pyarrow && /var/tmp/geoflow-pyarrow/bin/pip install pyarrow shapely pyproj)";
            assert!(!required("GEOFLOW_REQUIRE_TOOLS"), "{why}");
            eprintln!("skipped: {why}");
            None
        })
}

/// Runs the fixture script; `false` when it fails (a GeoJSON file whose geometries mix
/// families has no native encoding, say).
fn fixture(args: &[&str]) -> bool {
    let Some(python) = python() else { return false };
    let out = Command::new(python).arg(FIXTURES_SCRIPT).args(args).output().expect("the Python runs");
    if !out.status.success() {
        eprintln!("fixtures {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// The fixtures shared by the tests of this file, written once.
fn fixtures() -> Option<&'static Path> {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    python()?;
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().to_str().expect("UTF-8 path");
        assert!(fixture(&["variants", path]), "the variant fixtures are written");
        assert!(fixture(&["types", &format!("{path}/types.parquet")]), "the types fixture is written");
        Some(dir)
    })
    .as_ref()
    .map(|dir| dir.path())
}

/// Every feature of the file, or the error that ended the reading.
fn read(path: &Path) -> Result<(SourceInfo, Vec<RawFeature>), ReadError> {
    read_with(path, &ReadOptions::default())
}

fn read_with(path: &Path, options: &ReadOptions) -> Result<(SourceInfo, Vec<RawFeature>), ReadError> {
    let mut file = File::open(path)?;
    let source = open(&mut file, path, options)?;
    let mut features = Vec::new();
    let mut source = source;
    for feature in source.by_ref() {
        features.push(feature?);
    }
    Ok((source.info(), features))
}

fn props(raw: &RawFeature) -> &[(String, PropValue)] {
    &raw.decoded.as_ref().expect("a decoded feature").properties
}

fn prop<'a>(raw: &'a RawFeature, key: &str) -> &'a PropValue {
    props(raw).iter().find(|(k, _)| k == key).map(|(_, v)| v).unwrap_or_else(|| panic!("no property {key}"))
}

fn geometry(raw: &RawFeature) -> Option<Geom> {
    raw.decoded.as_ref().expect("a decoded feature").geometry.clone()
}

fn text(s: &str) -> PropValue {
    PropValue::Text(s.to_string())
}

fn json(s: &str) -> PropValue {
    PropValue::Json(s.to_string())
}

#[test]
fn every_property_type_is_kept() {
    let Some(dir) = fixtures() else { return };
    let (info, features) = read(&dir.join("types.parquet")).expect("the file reads");
    assert_eq!(features.len(), 10_000);
    assert_eq!(info.format, "GeoParquet");
    let crs = info.source_crs.as_deref().unwrap_or_default();
    assert!(crs.contains("32633"), "{info:?}");
    for (i, f) in features.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert_eq!(f.decoded.as_ref().unwrap().id, PropValue::Null);
    }

    let row = &features[1];
    let expected = [
        ("i8", PropValue::Int(-1)),
        ("i16", PropValue::Int(1)),
        ("i32", PropValue::Int(-1)),
        ("i64", PropValue::Int((1 << 62) + 1)),
        ("u8", PropValue::Int(1)),
        ("u16", PropValue::Int(1)),
        ("u32", PropValue::Int(4_000_000_001)),
        ("u64", json("18446744073709551614")),
        ("f16", PropValue::Real(1.5)),
        // The 32-bit float's own shortest text, not 1.100000023841858.
        ("f32", PropValue::Real(1.1)),
        ("f64", PropValue::Real(1.0 / 3.0)),
        ("flag", PropValue::Bool(false)),
        ("name", text("name 1 ü")),
        ("large_name", text("large 1")),
        ("blob", text("01ff")),
        ("day", text("1970-01-02")),
        ("at_utc", text("2024-05-01T12:00:00.001Z")),
        // Parquet has no unit of seconds: pyarrow stores them as milliseconds.
        ("at_berlin", text("2024-05-01T12:00:01.000Z")),
        ("at_naive", text("2024-05-01T12:00:00.000001")),
        ("clock", text("12:34:56.790")),
        ("clock_us", text("12:34:56.000002")),
        ("price", json("1.125")),
        ("huge", json("1000000000000000000000000000001.00000")),
        ("list", json("[1,2]")),
        ("record", json(r#"{"a":1,"b":"x"}"#)),
        ("mapping", json(r#"{"k":1}"#)),
        ("colour", text("green")),
        ("nothing", PropValue::Null),
    ];
    let keys: Vec<&str> = props(row).iter().map(|(k, _)| k.as_str()).collect();
    let expected_keys: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, expected_keys, "columns in file order, the geometry left out");
    for (key, value) in &expected {
        assert_eq!(prop(row, key), value, "{key}");
    }
    assert_eq!(prop(&features[9_998], "colour"), &text("blue"));
    assert_eq!(prop(&features[9_998], "day"), &text("1997-05-17"));

    // Row 3: every column null, the geometry too.
    assert!(props(&features[3]).iter().all(|(_, v)| *v == PropValue::Null), "{:?}", props(&features[3]));
    assert_eq!(geometry(&features[3]), None);

    // Row 5: a broken WKB value is that feature's problem, its properties still read.
    let broken = features[5].decoded.as_ref().unwrap();
    assert_eq!(broken.geometry, None);
    assert_eq!(broken.problems.len(), 1, "{:?}", broken.problems);
    assert_eq!(broken.problems[0].code, ProblemCode::InvalidCoordinates);
    assert!(broken.problems[0].message.contains("WKB"), "{}", broken.problems[0].message);
    assert_eq!(prop(&features[5], "i16"), &PropValue::Int(5));

    // UTM 33N: easting 500 000 lies on the central meridian, 15°E.
    let mut g = geometry(&features[0]).expect("a point");
    assert_eq!(format!("{g:?}"), format!("{:?}", Geom::Point(Pos::xy(500_000.0, 5_000_000.0))));
    features[0].transform.apply_to(&mut g).expect("transforms");
    let Geom::Point(p) = g else { unreachable!() };
    assert!((p.x - 15.0).abs() < 1e-9 && (45.0..45.2).contains(&p.y), "{p:?}");
}

#[test]
fn native_encodings_are_read() {
    let Some(dir) = fixtures() else { return };
    let xy = |x: f64, y: f64| Pos::xy(x, y);
    let ring = |pts: &[(f64, f64)]| pts.iter().map(|&(x, y)| xy(x, y)).collect::<Vec<_>>();
    let point_z = Pos { x: 1.0, y: 2.0, z: 3.0 };
    let cases: Vec<(&str, Vec<Option<Geom>>)> = vec![
        ("point", vec![Some(Geom::Point(xy(1.0, 2.0))), None, Some(Geom::Point(xy(3.0, 4.0)))]),
        ("point_interleaved", vec![Some(Geom::Point(xy(1.0, 2.0))), None, Some(Geom::Point(xy(3.0, 4.0)))]),
        ("point_z", vec![Some(Geom::Point(point_z)), Some(Geom::Point(Pos { x: 4.0, y: 5.0, z: 6.0 }))]),
        ("point_z_interleaved", vec![Some(Geom::Point(point_z)), Some(Geom::Point(Pos { x: 4.0, y: 5.0, z: 6.0 }))]),
        (
            "linestring",
            vec![
                Some(Geom::LineString(ring(&[(0.0, 0.0), (1.0, 1.0), (2.0, 0.0)]))),
                None,
                Some(Geom::LineString(ring(&[(5.0, 5.0), (6.0, 6.0)]))),
            ],
        ),
        (
            "polygon",
            vec![
                Some(Geom::Polygon(vec![
                    ring(&[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 0.0)]),
                    ring(&[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]),
                ])),
                Some(Geom::Polygon(vec![ring(&[(10.0, 10.0), (11.0, 10.0), (11.0, 11.0), (10.0, 10.0)])])),
            ],
        ),
        (
            "multipoint",
            vec![Some(Geom::MultiPoint(ring(&[(0.0, 0.0), (1.0, 1.0)]))), Some(Geom::MultiPoint(ring(&[(2.0, 2.0)])))],
        ),
        (
            "multilinestring",
            vec![Some(Geom::MultiLineString(vec![
                ring(&[(0.0, 0.0), (1.0, 1.0)]),
                ring(&[(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]),
            ]))],
        ),
    ];
    let multipolygon = vec![
        Some(Geom::MultiPolygon(vec![
            vec![ring(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)])],
            vec![ring(&[(5.0, 5.0), (6.0, 5.0), (6.0, 6.0), (5.0, 5.0)])],
        ])),
        None,
    ];
    let cases =
        cases.into_iter().chain([("multipolygon", multipolygon.clone()), ("multipolygon_interleaved", multipolygon)]);
    for (name, expected) in cases {
        let (info, features) = read(&dir.join(format!("{name}.parquet"))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.source_crs, None, "{name}: OGC:CRS84 when the metadata names no CRS");
        // Compared as text: a missing z is NaN, which equals nothing.
        let got: Vec<Option<Geom>> = features.iter().map(geometry).collect();
        assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{name}");
        let base = name.trim_end_matches("_interleaved");
        assert_eq!(prop(&features[0], "label"), &text(&format!("{base} 0")), "{name}");
    }
}

#[test]
fn metadata_cases() {
    let Some(dir) = fixtures() else { return };
    // crs null: unknown, read as is; spherical edges; the bbox covering left out; a further
    // geometry column kept as hex WKB.
    let (info, features) = read(&dir.join("crs_null.parquet")).expect("reads");
    assert_eq!(info.source_crs, None);
    let notes = info.notes.join("\n");
    for said in ["unknown", "spherical", "\"centroid\""] {
        assert!(notes.contains(said), "{said} in {notes}");
    }
    let keys: Vec<&str> = props(&features[0]).iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["label", "centroid"]);
    assert!(matches!(prop(&features[0], "centroid"), PropValue::Text(hex) if hex.starts_with("0101000000")));
    assert_eq!(format!("{:?}", geometry(&features[1])), format!("{:?}", Some(Geom::Point(Pos::xy(3.0, 4.0)))));

    // No GeoParquet metadata, but a WKB column named geometry: read, and the report says so.
    let (info, features) = read(&dir.join("no_geo_wkb.parquet")).expect("reads");
    assert_eq!(features.len(), 2);
    assert!(info.notes.iter().any(|n| n.contains("no GeoParquet metadata")), "{:?}", info.notes);
    assert_eq!(format!("{:?}", geometry(&features[0])), format!("{:?}", Some(Geom::Point(Pos::xy(1.0, 2.0)))));

    // Plain Parquet: refused, saying what to do.
    let err = read(&dir.join("plain.parquet")).map(|_| ()).unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::UnsupportedFormat), "{err}");
    assert!(err.to_string().contains("without GeoParquet metadata"), "{err}");

    // Metadata that does not fit the column.
    let err = read(&dir.join("wrong_encoding.parquet")).map(|_| ()).unwrap_err();
    assert_eq!(err.code(), Some(ProblemCode::MalformedFile), "{err}");
    assert!(err.to_string().contains("GeoParquet") && err.to_string().contains("geometry"), "{err}");

    // A CRS given with the source overrides the file's.
    let options = ReadOptions { source_crs: Some("EPSG:3857".into()), ..ReadOptions::default() };
    let (info, _) = read_with(&dir.join("types.parquet"), &options).expect("reads");
    assert!(info.source_crs.as_deref().unwrap_or_default().contains("3857"), "{info:?}");
}

#[test]
fn format_is_told_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let misnamed = dir.path().join("countries.geojson");
    std::fs::copy(SMALL, &misnamed).unwrap();
    let (info, features) = read(&misnamed).expect("reads");
    assert_eq!(info.format, "GeoParquet");
    assert_eq!(features.len(), 24);

    // Gzipped: spooled to the scratch folder and read from there.
    let gzipped = dir.path().join("data.csv");
    let mut encoder = flate2::write::GzEncoder::new(File::create(&gzipped).unwrap(), flate2::Compression::fast());
    encoder.write_all(&std::fs::read(SMALL).unwrap()).unwrap();
    encoder.finish().unwrap();
    let options = ReadOptions { scratch_dir: Some(dir.path().to_path_buf()), ..ReadOptions::default() };
    let (info, features) = read_with(&gzipped, &options).expect("reads");
    assert_eq!(info.format, "gzip GeoParquet");
    assert_eq!(features.len(), 24);
}

// Natural Earth: each GeoJSON file as GeoParquet (WKB, native where its geometries are of one
// family, and a Web Mercator copy of the point files), compared feature by feature.

fn shared_dir() -> Option<PathBuf> {
    let root = std::env::var_os("GEOFLOW_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = root.join("data/naturalearth");
    if dir.is_dir() {
        return Some(dir);
    }
    let why = format!("no Natural Earth data in {}", dir.display());
    assert!(!required("GEOFLOW_REQUIRE_SHARED"), "{why}");
    eprintln!("skipped: {why}");
    None
}

/// Geometries compared as multi-geometries: the native encoding of a file mixing Polygon
/// and MultiPolygon is `multipolygon`, which makes every polygon a MultiPolygon of one.
fn as_multi(geom: Geom) -> Geom {
    match geom {
        Geom::Point(p) => Geom::MultiPoint(vec![p]),
        Geom::LineString(l) => Geom::MultiLineString(vec![l]),
        Geom::Polygon(p) => Geom::MultiPolygon(vec![p]),
        other => other,
    }
}

fn positions(geom: &Geom) -> Vec<Pos> {
    let mut all = Vec::new();
    geom.for_each_pos(&mut |p| all.push(*p));
    all
}

fn same_geometry(expected: &Geom, got: &Geom, tolerance: f64) -> Result<(), String> {
    let (expected, got) = (as_multi(expected.clone()), as_multi(got.clone()));
    if expected.kind() != got.kind() {
        return Err(format!("{:?} read as {:?}", expected.kind(), got.kind()));
    }
    // Same structure: the same parts of the same lengths.
    let shape = |g: &Geom| format!("{g:?}").chars().filter(|c| matches!(c, '[' | ']')).collect::<String>();
    if shape(&expected) != shape(&got) {
        return Err("the parts differ".into());
    }
    let (a, b) = (positions(&expected), positions(&got));
    match a.iter().zip(&b).position(|(a, b)| (a.x - b.x).abs() > tolerance || (a.y - b.y).abs() > tolerance) {
        Some(i) => Err(format!("position {i}: {:?} read as {:?}", a[i], b[i])),
        None if a.len() != b.len() => Err("position counts differ".into()),
        None => Ok(()),
    }
}

/// Property values equal up to the type changes the conversion makes: a column mixing
/// integers and reals is all reals in Parquet (one type per column), and a number with more
/// digits than a double keeps (kept exact as `Json` from GeoJSON) went through a double.
fn same_value(geojson: &PropValue, parquet: &PropValue) -> bool {
    match (geojson, parquet) {
        (PropValue::Int(i), PropValue::Real(r)) => *i as f64 == *r,
        (PropValue::Json(exact), PropValue::Real(r)) => exact.parse::<f64>() == Ok(*r),
        (a, b) => a == b,
    }
}

fn compare(name: &str, geojson: &Path, parquet: &Path, tolerance: f64) {
    let (_, expected) = read(geojson).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (info, got) = read(parquet).unwrap_or_else(|e| panic!("{name} as GeoParquet: {e}"));
    assert_eq!(info.format, "GeoParquet");
    assert_eq!(expected.len(), got.len(), "{name}: feature count");
    for (e, g) in expected.iter().zip(&got) {
        let mut e_props = Vec::new();
        let parsed = parse_feature(&e.bytes, &e.transform, Parts::All, |k, v| e_props.push((k.to_string(), v)));
        // Every GeoJSON property is a column; features without it hold null there.
        for (key, value) in &e_props {
            let got = props(g).iter().find(|(k, _)| k == key).map(|(_, v)| v);
            let got = got.unwrap_or_else(|| panic!("{name} #{}: no column {key}", e.index));
            assert!(same_value(value, got), "{name} #{} {key}: {value:?} read as {got:?}", e.index);
        }
        for (key, value) in props(g) {
            if !e_props.iter().any(|(k, _)| k == key) {
                assert_eq!(value, &PropValue::Null, "{name} #{} {key}", e.index);
            }
        }
        let decoded = g.decoded.as_ref().unwrap();
        assert!(decoded.problems.is_empty(), "{name} #{}: {:?}", e.index, decoded.problems);
        let mut got_geometry = decoded.geometry.clone();
        if let Some(geom) = got_geometry.as_mut() {
            g.transform.apply_to(geom).unwrap_or_else(|p| panic!("{name} #{}: {p}", e.index));
        }
        match (&parsed.geometry, &got_geometry) {
            (Some(a), Some(b)) => {
                same_geometry(a, b, tolerance).unwrap_or_else(|why| panic!("{name} #{}: {why}", e.index))
            }
            (a, b) => assert_eq!(a.is_some(), b.is_some(), "{name} #{}", e.index),
        }
    }
}

#[test]
fn natural_earth_round_trip() {
    let Some(shared) = shared_dir() else { return };
    if python().is_none() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "Natural Earth files in {}", shared.display());
    let mut native = 0;
    for geojson in &files {
        let stem = geojson.file_stem().unwrap().to_str().unwrap();
        let source = geojson.to_str().unwrap();
        let wkb = out.path().join(format!("{stem}.parquet"));
        assert!(fixture(&["convert", source, wkb.to_str().unwrap()]), "{stem} converts");
        compare(stem, geojson, &wkb, 1e-9);

        let geoarrow = out.path().join(format!("{stem}.native.parquet"));
        if fixture(&["convert", source, geoarrow.to_str().unwrap(), "--native"]) {
            compare(&format!("{stem} (native)"), geojson, &geoarrow, 1e-9);
            native += 1;
        }
        // Points well inside Web Mercator's latitudes.
        if stem.contains("populated_places") || stem.contains("ports") {
            let projected = out.path().join(format!("{stem}.3857.parquet"));
            assert!(fixture(&["convert", source, projected.to_str().unwrap(), "--crs", "EPSG:3857"]));
            let (info, _) = read(&projected).unwrap();
            assert!(info.source_crs.as_deref().unwrap_or_default().contains("3857"), "{info:?}");
            compare(&format!("{stem} (EPSG:3857)"), geojson, &projected, 1e-6);
        }
    }
    assert!(native >= files.len() / 2, "most files have one geometry family ({native} of {})", files.len());
}

// Bad input: never a panic, always features and/or an error naming the format.

/// Opens and reads `bytes` as a file; any error must say what is wrong with which format.
fn read_bytes(bytes: &[u8]) -> Result<usize, String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    match read(file.path()) {
        Ok((_, features)) => Ok(features.len()),
        Err(ReadError::Io(e)) => panic!("an IO error for a corrupt file: {e}"),
        Err(e) => {
            let message = e.to_string();
            let names_it = ["Parquet", "GeoJSON", "CSV", "does not read"].iter().any(|n| message.contains(n));
            assert!(names_it, "{message}");
            Err(message)
        }
    }
}

#[test]
fn truncated_files_are_errors() {
    let bytes = std::fs::read(SMALL).unwrap();
    assert_eq!(read_bytes(&bytes), Ok(24));
    let cuts = (0..4096.min(bytes.len())).chain((4096..bytes.len()).step_by(97));
    for len in cuts {
        let result = read_bytes(&bytes[..len]);
        if len >= 4 {
            // Without its footer a Parquet file has nothing to read.
            let message = result.expect_err("a truncated file is an error");
            assert!(message.contains("GeoParquet"), "{len}: {message}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bit_flips_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let mut bytes = std::fs::read(SMALL).unwrap();
        let len = bytes.len();
        for (at, bit) in flips {
            bytes[at.index(len)] ^= 1 << bit;
        }
        let _ = read_bytes(&bytes);
    }

    #[test]
    fn footer_damage_never_panics(at in 0usize..2048, garbage in proptest::collection::vec(any::<u8>(), 1..16)) {
        // The footer (the schema, row groups and key-value metadata) is the file's last part.
        let mut bytes = std::fs::read(SMALL).unwrap();
        let start = bytes.len().saturating_sub(8 + at);
        for (i, b) in garbage.iter().enumerate() {
            if let Some(slot) = bytes.get_mut(start + i) {
                *slot = *b;
            }
        }
        let _ = read_bytes(&bytes);
    }

    #[test]
    fn garbage_after_the_magic_never_panics(body in proptest::collection::vec(any::<u8>(), 0..4096), footer in any::<bool>()) {
        let mut bytes = b"PAR1".to_vec();
        bytes.extend(&body);
        if footer {
            bytes.extend(b"PAR1");
        }
        let message = read_bytes(&bytes).expect_err("garbage is not a file");
        prop_assert!(message.contains("GeoParquet"), "{}", message);
    }
}

/// Peak memory while reading a file of a few hundred megabytes: bounded by a row group, not
/// the file. `cargo test -p geoflow-formats --test geoparquet -- --ignored --nocapture`
#[test]
#[ignore]
fn large_file_memory_is_bounded() {
    if python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.parquet");
    assert!(fixture(&["large", path.to_str().unwrap(), "600000"]));
    let size = std::fs::metadata(&path).unwrap().len();
    let started = std::time::Instant::now();
    let mut file = File::open(&path).unwrap();
    let source = open(&mut file, &path, &ReadOptions::default()).unwrap();
    let mut count = 0u64;
    let mut vertices = 0u64;
    for feature in source {
        let feature = feature.unwrap();
        vertices += geometry(&feature).map_or(0, |g| u64::from(g.vertex_count()));
        count += 1;
    }
    assert_eq!(count, 600_000);
    assert_eq!(vertices, 600_000 * 32);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: unknown").to_string();
    println!("{} MB file, {count} features in {:?}; peak {peak}", size >> 20, started.elapsed());
    let kb: u64 = peak.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(kb < 1024 * 1024, "peak memory {peak} for a {} MB file", size >> 20);
}
