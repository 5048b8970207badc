//! CSV: real data converted by GDAL, header detection, quoting, typing, CRS, gzip, bounded
//! memory and broken input.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use geoflow_core::feature::{parse_feature, Parts};
use geoflow_core::geometry::{Geom, Pos};
use geoflow_core::report::ProblemCode;
use geoflow_core::value::{format_f64, PropValue};
use geoflow_formats::{detect, CsvOptions, DecodedFeature, Detected, Format, ReadError, ReadOptions, SourceInfo};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Memory accounting: live heap bytes of the current thread, to show that reading does not grow
// with the file (other tests run on other threads).

struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        account(layout.size() as isize);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        account(-(layout.size() as isize));
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Peak live bytes on this thread while `f` runs, above what was live when it started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let value = f();
    (value, PEAK.with(Cell::get) - start)
}

// ---------------------------------------------------------------------------------------------
// Reading helpers.

/// Every feature of the file at `path` (or the error that ended it), and the source's info.
fn read_path(path: &Path, options: &ReadOptions) -> Result<(SourceInfo, Vec<geoflow_formats::RawFeature>), ReadError> {
    let mut file = File::open(path)?;
    let mut source = geoflow_formats::open(&mut file, path, options)?;
    let mut features = Vec::new();
    for feature in source.by_ref() {
        features.push(feature?);
    }
    Ok((source.info(), features))
}

fn read_bytes(bytes: &[u8], options: &ReadOptions) -> Result<(SourceInfo, Vec<DecodedFeature>), ReadError> {
    let mut stream: &[u8] = bytes;
    let mut source = geoflow_formats::open(&mut stream, Path::new("in-memory.csv"), options)?;
    let mut features = Vec::new();
    for feature in source.by_ref() {
        let feature = feature?;
        features.push(*feature.decoded.expect("CSV features are decoded"));
    }
    Ok((source.info(), features))
}

fn read_ok(text: &str, options: &ReadOptions) -> Vec<DecodedFeature> {
    match read_bytes(text.as_bytes(), options) {
        Ok((info, features)) => {
            assert_eq!(info.format, "CSV");
            features
        }
        Err(e) => panic!("{text:?}: {e}"),
    }
}

fn read_err(text: &str, options: &ReadOptions) -> String {
    match read_bytes(text.as_bytes(), options) {
        Ok((_, features)) => panic!("{text:?} read as {features:?}"),
        Err(e) => e.to_string(),
    }
}

fn prop<'a>(feature: &'a DecodedFeature, key: &str) -> &'a PropValue {
    match feature.properties.iter().find(|(k, _)| k == key) {
        Some((_, v)) => v,
        None => panic!("no property {key:?} in {:?}", feature.properties),
    }
}

/// Equality that takes an absent Z (NaN) as equal to itself.
macro_rules! same_geom {
    ($a:expr, $b:expr) => {
        assert_eq!(format!("{:?}", $a), format!("{:?}", $b))
    };
    ($a:expr, $b:expr, $($what:tt)+) => {
        assert_eq!(format!("{:?}", $a), format!("{:?}", $b), $($what)+)
    };
}

fn text(s: &str) -> PropValue {
    PropValue::Text(s.to_string())
}

fn point(x: f64, y: f64) -> Option<Geom> {
    Some(Geom::Point(Pos::xy(x, y)))
}

// ---------------------------------------------------------------------------------------------
// Real data converted by GDAL.

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GEOFLOW_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let data = dir.join("data/naturalearth");
    if data.is_dir() {
        return Some(data);
    }
    if std::env::var("GEOFLOW_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("GEOFLOW_REQUIRE_SHARED=1 and {} is missing", data.display());
    }
    eprintln!("skipped: {} is missing (set GEOFLOW_SHARED_DIR)", data.display());
    None
}

fn have_ogr2ogr() -> bool {
    let found = Command::new("ogr2ogr").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("GEOFLOW_REQUIRE_TOOLS=1 and ogr2ogr is not installed");
        }
        eprintln!("skipped: ogr2ogr is not installed (GDAL)");
    }
    found
}

fn ogr2ogr(input: &Path, output: &Path, args: &[&str]) {
    let status =
        Command::new("ogr2ogr").args(["-f", "CSV"]).arg(output).arg(input).args(args).status().expect("ogr2ogr runs");
    assert!(status.success(), "ogr2ogr {args:?} {} failed", input.display());
}

/// A feature as compared: properties and geometry in WGS84.
struct Compared {
    properties: Vec<(String, PropValue)>,
    geometry: Option<Geom>,
}

fn geojson_features(path: &Path) -> Vec<Compared> {
    let (_, raws) = read_path(path, &ReadOptions::default()).expect("the GeoJSON reads");
    raws.into_iter()
        .map(|raw| {
            let mut properties = Vec::new();
            let parsed =
                parse_feature(&raw.bytes, &raw.transform, Parts::All, |k, v| properties.push((k.to_string(), v)));
            Compared { properties, geometry: parsed.geometry }
        })
        .collect()
}

fn csv_features(path: &Path, options: &ReadOptions) -> (SourceInfo, Vec<Compared>) {
    let (info, raws) = read_path(path, options).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let features = raws
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            assert_eq!(raw.index, i as u64);
            let decoded = raw.decoded.expect("decoded");
            assert!(decoded.problems.is_empty(), "{} #{i}: {:?}", path.display(), decoded.problems);
            assert_eq!(decoded.id, PropValue::Null);
            let geometry = decoded.geometry.map(|mut g| {
                raw.transform.apply_to(&mut g).expect("the transform applies");
                g
            });
            Compared { properties: decoded.properties, geometry }
        })
        .collect();
    (info, features)
}

/// The text GDAL wrote for a CSV value, as far as the reader's typing shows it.
fn csv_text(value: &PropValue) -> String {
    match value {
        PropValue::Null => String::new(),
        PropValue::Bool(b) => b.to_string(),
        PropValue::Int(i) => i.to_string(),
        PropValue::Real(f) => format_f64(*f),
        PropValue::Text(s) | PropValue::Json(s) => s.clone(),
    }
}

/// Compares a GeoJSON property with what CSV holds of it. CSV forces three changes: it has no
/// types, so a GeoJSON string that looks like a number or a boolean comes back typed (compared
/// as text); GDAL writes numbers with 15 significant digits (compared as numbers, to 1e-14
/// relative), so a GeoJSON real may come back an integer or text; and an empty string and a
/// null are both an empty cell.
fn same_property(key: &str, geojson: &PropValue, csv: &PropValue, what: &str) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * a.abs().max(b.abs()).max(1e-300);
    let as_number = |v: &PropValue| match v {
        PropValue::Int(i) => Some(*i as f64),
        PropValue::Real(f) => Some(*f),
        PropValue::Text(s) | PropValue::Json(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    let same = match (geojson, csv) {
        (a, b) if a == b => true,
        (PropValue::Text(s), PropValue::Null) => s.is_empty(),
        (PropValue::Text(s), PropValue::Bool(_)) => s.eq_ignore_ascii_case(&csv_text(csv)),
        (PropValue::Text(s), other) => *s == csv_text(other),
        // A GeoJSON number with more digits than a double keeps is exact text (Json).
        (PropValue::Int(_) | PropValue::Real(_) | PropValue::Json(_), other) => {
            as_number(other).zip(as_number(geojson)).is_some_and(|(a, b)| close(a, b))
        }
        (PropValue::Bool(b), PropValue::Int(i)) => *i == i64::from(*b),
        _ => false,
    };
    assert!(same, "{what}: property {key:?} is {geojson:?} in GeoJSON and {csv:?} in CSV");
}

fn same_geometry(geojson: &Option<Geom>, csv: &Option<Geom>, tolerance: f64, what: &str) {
    let (a, b) = match (geojson, csv) {
        (None, None) => return,
        (Some(a), Some(b)) => (a, b),
        _ => panic!("{what}: geometry {geojson:?} in GeoJSON and {csv:?} in CSV"),
    };
    assert_eq!(a.kind(), b.kind(), "{what}");
    let positions = |g: &Geom| {
        let mut all = Vec::new();
        g.for_each_pos(&mut |p| all.push(*p));
        all
    };
    let (pa, pb) = (positions(a), positions(b));
    assert_eq!(pa.len(), pb.len(), "{what}: vertex count");
    for (i, (p, q)) in pa.iter().zip(&pb).enumerate() {
        let off = (p.x - q.x).abs().max((p.y - q.y).abs());
        assert!(off <= tolerance, "{what}: vertex {i} is {p:?} in GeoJSON and {q:?} in CSV ({off:e} apart)");
        assert_eq!(p.has_z(), q.has_z(), "{what}: vertex {i} Z");
    }
}

fn compare(geojson: &[Compared], csv: &[Compared], tolerance: f64, what: &str) {
    assert_eq!(geojson.len(), csv.len(), "{what}: feature count");
    for (i, (g, c)) in geojson.iter().zip(csv).enumerate() {
        let what = format!("{what} #{i}");
        for (key, value) in &g.properties {
            let found = c.properties.iter().find(|(k, _)| k == key);
            let csv_value = found.map(|(_, v)| v).unwrap_or_else(|| panic!("{what}: no column {key:?}"));
            same_property(key, value, csv_value, &what);
        }
        // GDAL writes a column for every field of the layer: a feature without that property
        // has an empty cell.
        for (key, value) in &c.properties {
            if !g.properties.iter().any(|(k, _)| k == key) {
                assert_eq!(*value, PropValue::Null, "{what}: column {key:?} not in the GeoJSON feature");
            }
        }
        same_geometry(&g.geometry, &c.geometry, tolerance, &what);
    }
}

#[test]
fn natural_earth_through_gdal() {
    let Some(dir) = shared_dir() else { return };
    if !have_ogr2ogr() {
        return;
    }
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the data folder lists")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no GeoJSON in {}", dir.display());
    let xy = |x: &str, y: &str, crs: Option<&str>| ReadOptions {
        source_crs: crs.map(str::to_string),
        csv: CsvOptions { x_column: Some(x.into()), y_column: Some(y.into()), ..Default::default() },
        ..Default::default()
    };
    let mut checked = 0;
    for input in &files {
        let name = input.file_stem().and_then(|s| s.to_str()).expect("a file name").to_string();
        let geojson = geojson_features(input);
        let is_points = geojson.iter().all(|f| matches!(f.geometry, Some(Geom::Point(_)) | None));

        // WKT, comma-separated, the geometry column found by its name.
        let wkt = scratch.path().join(format!("{name}.csv"));
        ogr2ogr(input, &wkt, &["-lco", "GEOMETRY=AS_WKT"]);
        let (info, csv) = csv_features(&wkt, &ReadOptions::default());
        assert_eq!((info.format.as_str(), info.source_crs.as_deref()), ("CSV", None));
        compare(&geojson, &csv, 1e-9, &format!("{name} (WKT)"));

        // Semicolons, sniffed.
        if name.contains("admin") {
            let semicolon = scratch.path().join(format!("{name}-semicolon.csv"));
            ogr2ogr(input, &semicolon, &["-lco", "GEOMETRY=AS_WKT", "-lco", "SEPARATOR=SEMICOLON"]);
            let (_, csv) = csv_features(&semicolon, &ReadOptions::default());
            compare(&geojson, &csv, 1e-9, &format!("{name} (WKT, semicolons)"));
        }

        // Points as X and Y columns (named: some of these files also have LATITUDE and
        // LONGITUDE properties, which detection by name would pick first).
        if is_points {
            let xy_path = scratch.path().join(format!("{name}-xy.csv"));
            ogr2ogr(input, &xy_path, &["-lco", "GEOMETRY=AS_XY"]);
            let (_, csv) = csv_features(&xy_path, &xy("X", "Y", None));
            compare(&geojson, &csv, 1e-9, &format!("{name} (X, Y)"));

            // Projected: Web Mercator metres, read with the CRS given.
            let mercator = scratch.path().join(format!("{name}-3857.csv"));
            ogr2ogr(input, &mercator, &["-lco", "GEOMETRY=AS_XY", "-t_srs", "EPSG:3857"]);
            let (info, csv) = csv_features(&mercator, &xy("X", "Y", Some("EPSG:3857")));
            assert!(info.source_crs.is_some(), "{info:?}");
            compare(&geojson, &csv, 1e-6, &format!("{name} (X, Y in EPSG:3857)"));
        }

        // Projected polygons through PROJ: North American lakes in Conus Albers.
        if name.contains("north_america") {
            let albers = scratch.path().join(format!("{name}-5070.csv"));
            ogr2ogr(input, &albers, &["-lco", "GEOMETRY=AS_WKT", "-t_srs", "EPSG:5070"]);
            let options = ReadOptions { source_crs: Some("EPSG:5070".into()), ..Default::default() };
            let (info, csv) = csv_features(&albers, &options);
            assert!(info.source_crs.is_some(), "{info:?}");
            compare(&geojson, &csv, 1e-6, &format!("{name} (WKT in EPSG:5070)"));
        }
        checked += 1;
    }
    eprintln!("{checked} Natural Earth files compared");
}

// ---------------------------------------------------------------------------------------------
// Geometry columns.

#[test]
fn geometry_columns_are_found_by_name() {
    let wkt_cases = [
        "WKT,name\n\"POINT (1 2)\",a\n",
        "name;Geometry\na;POINT (1 2)\n",
        "name\tgeom\na\tPOINT (1 2)\n",
        "THE_GEOM|name\nPOINT (1 2)|a\n",
        "wkt_geom,name\nPOINT(1 2),a\n",
        "Shape,name\n\"POINT (1 2)\",a\n",
        "\u{feff}WKT,name\n\"POINT (1 2)\",a\n",
    ];
    let xy_cases = [
        "name,lon,lat\na,1,2\n",
        "name,LNG,LAT\na,1,2\n",
        "name;long;lat\na;1;2\n",
        "Latitude,name,Longitude\n2,a,1\n",
        "x|y|name\n1|2|a\n",
        "name\teasting\tnorthing\na\t1\t2\n",
        "POINT_X,POINT_Y,name\n1,2,a\n",
        " lon , lat ,name\n1,2,a\n",
    ];
    for csv in wkt_cases.iter().chain(&xy_cases) {
        let features = read_ok(csv, &ReadOptions::default());
        assert_eq!(features.len(), 1, "{csv:?}");
        same_geom!(features[0].geometry, point(1.0, 2.0), "{csv:?}");
        // The geometry columns are not properties.
        assert_eq!(features[0].properties, vec![("name".to_string(), text("a"))], "{csv:?}");
    }
}

#[test]
fn named_columns_override_detection() {
    let csv = "wkt,a,b,shape\nPOINT (9 9),1,2,\"POINT (3 4)\"\n";
    let by_wkt = CsvOptions { geometry_column: Some("SHAPE".into()), ..Default::default() };
    let features = read_ok(csv, &ReadOptions { csv: by_wkt, ..Default::default() });
    same_geom!(features[0].geometry, point(3.0, 4.0));
    assert_eq!(prop(&features[0], "wkt"), &text("POINT (9 9)"));

    let by_xy = CsvOptions { x_column: Some("a".into()), y_column: Some("b".into()), ..Default::default() };
    let features = read_ok(csv, &ReadOptions { csv: by_xy, ..Default::default() });
    same_geom!(features[0].geometry, point(1.0, 2.0));
    assert_eq!(features[0].properties.len(), 2);

    let semicolons = CsvOptions { delimiter: Some(b';'), ..Default::default() };
    let features = read_ok("name;wkt\n\"a,b,c\";POINT (1 2)\n", &ReadOptions { csv: semicolons, ..Default::default() });
    assert_eq!(prop(&features[0], "name"), &text("a,b,c"));
}

#[test]
fn a_file_without_geometry_columns_says_how_to_name_them() {
    let why = read_err("name,value\na,1\n", &ReadOptions::default());
    assert!(why.contains("CSV") && why.contains("no geometry column"), "{why}");
    assert!(why.contains("--csv-geometry") && why.contains("\"name\", \"value\""), "{why}");

    let missing = CsvOptions { geometry_column: Some("where".into()), ..Default::default() };
    let why = read_err("name,wkt\na,POINT (1 2)\n", &ReadOptions { csv: missing, ..Default::default() });
    assert!(why.contains("CSV") && why.contains("\"where\"") && why.contains("\"wkt\""), "{why}");

    let half = CsvOptions { x_column: Some("lon".into()), ..Default::default() };
    let why = read_err("lon,lat\n1,2\n", &ReadOptions { csv: half, ..Default::default() });
    assert!(why.contains("both"), "{why}");

    // A header alone: no features, no error.
    assert!(read_ok("wkt,name\n", &ReadOptions::default()).is_empty());
}

#[test]
fn empty_geometry_cells_give_features_without_geometry() {
    let features = read_ok("wkt,n\n,1\n\"\",2\n  ,3\nPOINT EMPTY,4\n", &ReadOptions::default());
    assert_eq!(features.len(), 4);
    assert!(features.iter().all(|f| f.geometry.is_none() && f.problems.is_empty()), "{features:?}");
    let features = read_ok("lon,lat\n,\n", &ReadOptions::default());
    assert_eq!((features[0].geometry.as_ref(), features[0].problems.len()), (None, 0));
}

#[test]
fn unreadable_geometries_are_problems_of_their_feature() {
    let csv = "wkt,name\nPOINT (1 2),ok\nPOINT (1,a\nCIRCLE (1 2),bad\nPOINT (3 4),ok\n";
    let features = read_ok(csv, &ReadOptions::default());
    assert_eq!(features.len(), 4);
    // `POINT (1` and `a` are two fields: the quote-less WKT holds a comma.
    assert_eq!(features[1].problems[0].code, ProblemCode::InvalidCoordinates);
    assert!(features[1].problems[0].message.contains("\"wkt\""), "{:?}", features[1].problems);
    let circle = &features[2].problems[0];
    assert_eq!(circle.code, ProblemCode::InvalidCoordinates);
    assert!(circle.message.contains("\"wkt\"") && circle.message.contains("CIRCLE (1 2)"), "{circle:?}");
    same_geom!(features[3].geometry, point(3.0, 4.0));

    let long = format!("wkt\n\"POLYGON (({}\"\n", "1 2, ".repeat(1000));
    let features = read_ok(&long, &ReadOptions::default());
    assert!(features[0].problems[0].message.len() < 400, "{:?}", features[0].problems);

    let features = read_ok("lon,lat,name\n1.5,north,a\n1,,b\n1e999,2,c\n", &ReadOptions::default());
    let messages: Vec<_> = features.iter().map(|f| (f.problems[0].code, f.problems[0].message.clone())).collect();
    assert!(messages.iter().all(|(code, _)| *code == ProblemCode::InvalidCoordinates), "{messages:?}");
    assert!(messages[0].1.contains("\"lat\"") && messages[0].1.contains("north"), "{messages:?}");
    assert!(messages[1].1.contains("\"lat\" is empty"), "{messages:?}");
    assert!(messages[2].1.contains("1e999"), "{messages:?}");
    assert!(features.iter().all(|f| f.geometry.is_none()));
}

#[test]
fn wkt_of_every_kind_keeps_z() {
    let csv = "id;wkt\n\
        1;POINT Z (1 2 3)\n\
        2;LINESTRING M (0 0 5, 1 1 6)\n\
        3;MULTIPOLYGON ZM (((0 0 1 9, 1 0 1 9, 1 1 1 9, 0 0 1 9)))\n\
        4;GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))\n\
        5;MULTIPOINT ((1 2), (3 4))\n";
    let features = read_ok(csv, &ReadOptions::default());
    same_geom!(features[0].geometry, Some(Geom::Point(Pos { x: 1.0, y: 2.0, z: 3.0 })));
    same_geom!(features[1].geometry, Some(Geom::LineString(vec![Pos::xy(0.0, 0.0), Pos::xy(1.0, 1.0)])));
    let z = Pos { x: 0.0, y: 0.0, z: 1.0 };
    match &features[2].geometry {
        Some(Geom::MultiPolygon(polygons)) => assert_eq!(polygons[0][0][0], z),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&features[3].geometry, Some(Geom::GeometryCollection(members)) if members.len() == 2));
    same_geom!(features[4].geometry, Some(Geom::MultiPoint(vec![Pos::xy(1.0, 2.0), Pos::xy(3.0, 4.0)])));
    assert!(features.iter().all(|f| f.problems.is_empty()));
}

// ---------------------------------------------------------------------------------------------
// CRS.

#[test]
fn ewkt_srid_is_the_files_crs() {
    let csv = "wkt,n\n\
        \"SRID=3857;POINT (1113194.9079327357 0)\",1\n\
        \"POINT (0 0)\",2\n\
        \"SRID=4326;POINT (10 0)\",3\n";
    let mut stream: &[u8] = csv.as_bytes();
    let mut source = geoflow_formats::open(&mut stream, Path::new("x"), &ReadOptions::default()).expect("opens");
    let raws: Vec<_> = source.by_ref().collect::<Result<_, _>>().expect("reads");
    let info = source.info();
    assert!(info.source_crs.as_deref().is_some_and(|c| c.contains("3857")), "{info:?}");
    let mut first = raws[0].decoded.as_ref().and_then(|d| d.geometry.clone()).expect("a geometry");
    raws[0].transform.apply_to(&mut first).expect("transforms");
    match first {
        Geom::Point(p) => assert!((p.x - 10.0).abs() < 1e-9 && p.y.abs() < 1e-9, "{p:?}"),
        other => panic!("{other:?}"),
    }
    // No SRID: the file's CRS. Another SRID: reported.
    let second = raws[1].decoded.as_ref().expect("decoded");
    assert!(second.problems.is_empty() && second.geometry.is_some());
    assert_eq!(raws[1].transform, raws[0].transform);
    let third = raws[2].decoded.as_ref().expect("decoded");
    assert_eq!(third.problems[0].code, ProblemCode::UnsupportedCrs, "{third:?}");
    assert!(third.problems[0].message.contains("SRID=4326"), "{third:?}");

    // The CRS given wins, and SRIDs are not looked at.
    let given = ReadOptions { source_crs: Some("EPSG:4326".into()), ..Default::default() };
    let features = read_ok(csv, &given);
    assert!(features.iter().all(|f| f.problems.is_empty()));

    // An SRID PROJ does not know fails the file, naming it.
    let why = read_err("wkt\n\"SRID=999999;POINT (1 2)\"\n", &ReadOptions::default());
    assert!(why.contains("CSV") && why.contains("SRID=999999"), "{why}");
}

// ---------------------------------------------------------------------------------------------
// Text.

#[test]
fn quoting_embedded_newlines_and_crlf() {
    let csv = "\"WKT\",\"name\",\"note\"\r\n\
        \"POINT (1 2)\",\"a \"\"quoted\"\" name\",\"line one\nline two\"\r\n\
        \r\n\
        \"POINT (3 4)\",\"semi;colon, comma\",\"\"\r\n";
    let features = read_ok(csv, &ReadOptions::default());
    assert_eq!(features.len(), 2, "{features:?}");
    assert_eq!(prop(&features[0], "name"), &text("a \"quoted\" name"));
    assert_eq!(prop(&features[0], "note"), &text("line one\nline two"));
    assert_eq!(prop(&features[1], "name"), &text("semi;colon, comma"));
    assert_eq!(prop(&features[1], "note"), &PropValue::Null);
    same_geom!(features[1].geometry, point(3.0, 4.0));
}

#[test]
fn cells_are_typed_one_by_one_without_loss() {
    let csv = "wkt,v\nPOINT (0 0),12\nPOINT (0 0),007\nPOINT (0 0),1.5\nPOINT (0 0),1.10\nPOINT (0 0),TRUE\n\
        POINT (0 0),\nPOINT (0 0),2024-05-01\nPOINT (0 0),1e400\nPOINT (0 0),99999999999999999999\n";
    let values: Vec<PropValue> = read_ok(csv, &ReadOptions::default()).iter().map(|f| prop(f, "v").clone()).collect();
    assert_eq!(
        values,
        [
            PropValue::Int(12),
            text("007"),
            PropValue::Real(1.5),
            text("1.10"),
            PropValue::Bool(true),
            PropValue::Null,
            text("2024-05-01"),
            text("1e400"),
            text("99999999999999999999"),
        ]
    );
}

#[test]
fn rows_of_the_wrong_length_and_bad_text_are_problems_of_their_feature() {
    let csv =
        b"wkt,name,n\nPOINT (1 2),a,1\nPOINT (1 2),b\nPOINT (1 2),c,3,extra\nPOINT (1 2),caf\xe9,4\nPOINT (5 6),e,5\n";
    let (_, features) = read_bytes(csv, &ReadOptions::default()).expect("reads");
    assert_eq!(features.len(), 5);
    assert!(features[0].problems.is_empty());
    for short_or_long in &features[1..3] {
        let problem = &short_or_long.problems[0];
        assert_eq!(problem.code, ProblemCode::MalformedFile);
        assert!(problem.message.contains("fields where the header has 3"), "{problem:?}");
        assert!(short_or_long.geometry.is_none());
    }
    let latin1 = &features[3].problems[0];
    assert_eq!(latin1.code, ProblemCode::UnstorableText);
    assert!(latin1.message.contains("\"name\"") && latin1.message.contains("UTF-8"), "{latin1:?}");
    assert_eq!(prop(&features[3], "name"), &text("caf\u{fffd}"));
    same_geom!(features[4].geometry, point(5.0, 6.0));
}

#[test]
fn repeated_and_empty_column_names_stay_distinct() {
    let (info, features) = read_bytes(b"wkt,a,a,\nPOINT (1 2),1,2,3\n", &ReadOptions::default()).expect("reads");
    let keys: Vec<&str> = features[0].properties.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "a_2", "field_4"]);
    assert_eq!(info.notes.len(), 2, "{info:?}");
}

#[test]
fn the_pipeline_stores_csv_rows_and_reports_bad_ones_by_index() {
    use geoflow_core::process::{observe_schema, Processed, Processor};
    use geoflow_core::report::Policy;
    use geoflow_core::schema::SchemaBuilder;

    // Web Mercator metres: 10°E 0°N, no geometry, then an unreadable y.
    let csv = "name,x,y,pop\na,1113194.9079327357,0,5\nb,,,\nc,1,north,2\n";
    let options = ReadOptions { source_crs: Some("EPSG:3857".into()), ..Default::default() };
    let mut stream: &[u8] = csv.as_bytes();
    let source = geoflow_formats::open(&mut stream, Path::new("x.csv"), &options).expect("opens");
    let raws: Vec<_> = source.collect::<Result<_, _>>().expect("reads");
    let mut schema = SchemaBuilder::default();
    raws.iter().for_each(|raw| observe_schema(raw, &mut schema));
    let schema = schema.finish();
    let keys: Vec<&str> = schema.fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["name", "pop"]);
    let processor = Processor::new(&schema, Policy::Skip);
    let processed: Vec<Processed> = raws.into_iter().map(|raw| processor.process(raw)).collect();
    match &processed[0] {
        Processed::Row(row, None) => {
            let bbox = row.geometry.as_ref().and_then(|g| g.bbox).expect("a point");
            assert!((bbox.min_x - 10.0).abs() < 1e-9 && bbox.min_y.abs() < 1e-9, "{bbox:?}");
            assert_eq!(row.properties, [(0, text("a")), (1, PropValue::Int(5))]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&processed[1], Processed::Row(row, None) if row.geometry.is_none()), "{:?}", processed[1]);
    match &processed[2] {
        Processed::Invalid(issue) => {
            assert_eq!((issue.index, issue.code), (2, ProblemCode::InvalidCoordinates));
            assert!(issue.reason.contains("\"y\"") && issue.reason.contains("north"), "{issue:?}");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Streams.

#[test]
fn gzipped_csv_reads_through_open() {
    let dir = tempfile::tempdir().expect("a scratch folder");
    let path = dir.path().join("points.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(File::create(&path).expect("creates"), flate2::Compression::fast());
    encoder.write_all(b"name;lon;lat\n").expect("writes");
    for i in 0..1000 {
        writeln!(encoder, "p{i};{};{}", i % 180, i % 90).expect("writes");
    }
    encoder.finish().expect("finishes");
    let (info, features) = read_path(&path, &ReadOptions::default()).expect("reads");
    assert_eq!(info.format, "gzip CSV");
    assert_eq!(features.len(), 1000);
    let last = features[999].decoded.as_ref().expect("decoded");
    same_geom!(last.geometry, point(999.0 % 180.0, 999.0 % 90.0));
    assert_eq!(features[999].index, 999);

    // A cut gzip stream: the error names gzip.
    let bytes = std::fs::read(&path).expect("reads back");
    let cut = &bytes[..bytes.len() / 2];
    let mut stream: &[u8] = cut;
    let mut source = geoflow_formats::open(&mut stream, &path, &ReadOptions::default()).expect("opens");
    let error = source.by_ref().find_map(Result::err).expect("the cut is found");
    assert!(error.to_string().contains("gzip"), "{error}");
}

#[test]
fn csv_is_told_by_content_not_name() {
    let dir = tempfile::tempdir().expect("a scratch folder");
    let path = dir.path().join("misleading.geojson");
    std::fs::write(&path, "wkt\tname\nPOINT (1 2)\tx\n").expect("writes");
    let (info, features) = read_path(&path, &ReadOptions::default()).expect("reads");
    assert_eq!((info.format.as_str(), features.len()), ("CSV", 1));
}

/// Rows made as they are read: the file is never in memory.
struct GeneratedCsv {
    rows: u64,
    next: u64,
    pending: Vec<u8>,
    at: usize,
    produced: u64,
}

impl GeneratedCsv {
    fn new(rows: u64) -> GeneratedCsv {
        GeneratedCsv { rows, next: 0, pending: b"wkt,name,value,note\n".to_vec(), at: 0, produced: 0 }
    }
}

impl Read for GeneratedCsv {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.pending.len() {
            if self.next == self.rows {
                return Ok(0);
            }
            self.pending.clear();
            self.at = 0;
            let i = self.next;
            let _ = writeln!(
                self.pending,
                "\"LINESTRING ({} {}, {} {})\",row {i},{}.5,\"a note, with a comma\nand a line\"",
                i % 180,
                i % 90,
                (i + 1) % 180,
                (i + 1) % 90,
                i
            );
            self.next += 1;
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        self.produced += n as u64;
        Ok(n)
    }
}

#[test]
fn a_large_csv_streams_in_bounded_memory() {
    let rows = 140_000;
    let mut generated = GeneratedCsv::new(rows);
    let ((count, last_index), peak) = peak_during(|| {
        let mut source =
            geoflow_formats::open(&mut generated, Path::new("big.csv"), &ReadOptions::default()).expect("opens");
        let mut count = 0u64;
        let mut last_index = 0;
        for feature in source.by_ref() {
            let feature = feature.expect("reads");
            last_index = feature.index;
            count += 1;
        }
        (count, last_index)
    });
    eprintln!("{} bytes read with at most {peak} bytes live", generated.produced);
    assert!(generated.produced > 10 << 20, "only {} bytes made", generated.produced);
    assert_eq!((count, last_index), (rows, rows - 1));
    assert!(peak < 2 << 20, "{peak} bytes live at the peak while reading {} bytes", generated.produced);
}

#[test]
fn a_runaway_quote_fails_the_file_without_holding_it() {
    // An opening quote never closed: every later byte belongs to that one cell.
    let mut text = b"wkt,name\nPOINT (1 2),\"runaway\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 3 << 20));
    let options = ReadOptions {
        limits: geoflow_formats::ReaderOptions { max_feature_bytes: 1 << 20, ..Default::default() },
        ..Default::default()
    };
    let why = match read_bytes(&text, &options) {
        Err(e) => e.to_string(),
        Ok((_, features)) => panic!("read {} features", features.len()),
    };
    assert!(why.contains("CSV") && why.contains("larger than 1048576 bytes"), "{why}");
}

// ---------------------------------------------------------------------------------------------
// Broken input never panics.

/// A small CSV with quoting, newlines in cells, WKT of several kinds and typed values.
fn sample() -> Vec<u8> {
    let mut text = String::from("\u{feff}WKT,name,pop,ratio,flag,note\n");
    for i in 0..40 {
        let geometry = match i % 4 {
            0 => format!("POINT ({} {})", i, -i),
            1 => format!("LINESTRING Z ({i} 0 1, 1 {i} 2)"),
            2 => format!("POLYGON (({i} 0,{} 0,{} 1,{i} 0))", i + 1, i + 1),
            _ => "SRID=4326;MULTIPOINT ((1 2), (3 4))".to_string(),
        };
        text.push_str(&format!("\"{geometry}\",\"Place \"\"{i}\"\"\",{},{}.25,true,\"two\nlines\"\n", i * 1000, i));
    }
    text.into_bytes()
}

/// Reads all of `bytes`: features and/or an error, never a panic; an error of a CSV file
/// names CSV (or gzip, or the IO fault).
fn read_never_panics(bytes: &[u8]) {
    let mut stream: &[u8] = bytes;
    let head = &bytes[..bytes.len().min(4096)];
    let is_csv = detect(head) == Detected::Format(Format::Csv);
    let result = geoflow_formats::open(&mut stream, Path::new("fuzz"), &ReadOptions::default())
        .and_then(|mut source| source.by_ref().try_for_each(|f| f.map(drop)));
    if let Err(e) = result {
        let message = e.to_string();
        assert!(!message.is_empty());
        if is_csv {
            assert!(message.contains("CSV"), "{message}");
        }
    }
}

#[test]
fn every_truncation_reads_or_fails_cleanly() {
    let sample = sample();
    let cuts = (0..sample.len().min(4096)).chain([sample.len() - 1, sample.len()]);
    for cut in cuts {
        read_never_panics(&sample[..cut]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn bit_flips_never_panic(flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..8)) {
        let mut bytes = sample();
        for (at, bit) in flips {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        read_never_panics(&bytes);
    }

    #[test]
    fn garbage_after_a_header_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = b"wkt;lon;lat;x\n".to_vec();
        bytes.extend(&garbage);
        read_never_panics(&bytes);
    }

    #[test]
    fn garbage_wkt_never_panics(wkt in "(SRID=[0-9]{1,5};)?[A-Z]{0,20}( ?[ZM]{0,2})? ?[(), 0-9.eE+-]{0,60}") {
        let csv = format!("wkt\n\"{wkt}\"\n");
        read_never_panics(csv.as_bytes());
    }

    #[test]
    fn printable_garbage_never_panics(text in "[a-z,;\"\t|\n 0-9.]{0,400}") {
        read_never_panics(text.as_bytes());
    }
}
