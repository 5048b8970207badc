//! Every format, loaded as users load it: each Natural Earth file converted by `ogr2ogr` to a
//! zipped Shapefile, a GeoPackage, FlatGeobuf, CSV and gzipped GeoJSON — and to projected
//! copies — loads into the same features as the GeoJSON itself, on the GeoPackage store and on
//! PostGIS: counts, every property value, and every position within the CRS tolerance, all
//! read back by GDAL.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::*;

/// How one copy of a file is made, and what it can hold of it.
struct Variant {
    name: &'static str,
    /// `None` when the copy cannot be made of this file.
    make: fn(src: &Path, dir: &Path, crs: &str) -> Option<PathBuf>,
    /// Whether the copy is in the file's projected CRS (see [`projected_crs`]).
    projected: bool,
}

const VARIANTS: &[Variant] = &[
    Variant { name: "shp", make: |s, d, _| shapefile_zip(s, d, None), projected: false },
    Variant { name: "gpkg", make: |s, d, _| ogr(s, d, "GPKG", "gpkg", &[]), projected: false },
    Variant { name: "fgb", make: |s, d, _| ogr(s, d, "FlatGeobuf", "fgb", &[]), projected: false },
    Variant { name: "csv", make: |s, d, _| ogr(s, d, "CSV", "csv", &["-lco", "GEOMETRY=AS_WKT"]), projected: false },
    Variant { name: "gz", make: |s, d, _| gzipped(s, d), projected: false },
    Variant { name: "shp_proj", make: |s, d, crs| shapefile_zip(s, d, Some(crs)), projected: true },
    Variant { name: "gpkg_proj", make: |s, d, crs| ogr(s, d, "GPKG", "gpkg", &["-t_srs", crs]), projected: true },
    Variant { name: "fgb_proj", make: |s, d, crs| ogr(s, d, "FlatGeobuf", "fgb", &["-t_srs", crs]), projected: true },
];

/// A projected CRS whose area holds the file, and in which every position has an inverse:
/// Web Mercator for points (none beyond ±85°), CONUS Albers for North America, the world
/// equidistant cylindrical projection for the world's polygons (Mercator has no image of the
/// poles, and a pole's longitude does not survive an equal-area projection and back).
fn projected_crs(file: &str) -> &'static str {
    if file.contains("north_america") {
        "EPSG:5070"
    } else if file.contains("airports") || file.contains("ports") || file.contains("places") {
        "EPSG:3857"
    } else {
        "EPSG:4087"
    }
}

fn ogr(src: &Path, dir: &Path, driver: &str, ext: &str, extra: &[&str]) -> Option<PathBuf> {
    let out = dir.join(format!("copy.{ext}"));
    let status =
        Command::new("ogr2ogr").args(["-f", driver]).arg(&out).arg(src).args(extra).output().expect("ogr2ogr runs");
    assert!(status.status.success(), "ogr2ogr -f {driver}: {}", String::from_utf8_lossy(&status.stderr));
    Some(out)
}

/// The Shapefile's files (UTF-8 text, as the `.cpg` says) in a zip, under a folder as many
/// archives have them.
fn shapefile_zip(src: &Path, dir: &Path, crs: Option<&str>) -> Option<PathBuf> {
    let shp = dir.join("shp");
    std::fs::create_dir_all(&shp).unwrap();
    let mut args = vec!["-lco", "ENCODING=UTF-8"];
    if let Some(crs) = crs {
        args.extend(["-t_srs", crs]);
    }
    ogr(src, &shp, "ESRI Shapefile", "shp", &args)?;
    let zip = dir.join("copy.zip");
    let script = "import sys, zipfile, pathlib\n\
        with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
        \x20   for p in sorted(pathlib.Path(sys.argv[2]).iterdir()): z.write(p, 'layer/' + p.name)\n";
    let out = Command::new("/usr/bin/python3").args(["-c", script]).arg(&zip).arg(&shp).output().unwrap();
    assert!(out.status.success(), "zipping: {}", String::from_utf8_lossy(&out.stderr));
    Some(zip)
}

fn gzipped(src: &Path, dir: &Path) -> Option<PathBuf> {
    let out = dir.join("copy.data");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&out).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(src).unwrap(), &mut gz).unwrap();
    gz.finish().unwrap();
    Some(out)
}

/// Property values of one feature as GDAL reads them back, lineage columns left out.
fn properties(feature: &Value) -> Vec<(String, Value)> {
    feature["properties"]
        .as_object()
        .map(|o| o.iter().filter(|(k, _)| !k.starts_with("gf_")).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The runs of positions of a geometry (a point, each line, each ring), in order: nesting is
/// left out, since a Shapefile does not tell a Polygon from a MultiPolygon of one part.
fn runs(geometry: &Value) -> Vec<Vec<[f64; 2]>> {
    fn position(v: &Value) -> Option<[f64; 2]> {
        let a = v.as_array()?;
        Some([a.first()?.as_f64()?, a.get(1)?.as_f64()?])
    }
    fn walk(v: &Value, out: &mut Vec<Vec<[f64; 2]>>) {
        if let Some(p) = position(v) {
            out.push(vec![p]);
        } else if let Some(a) = v.as_array() {
            if a.first().and_then(position).is_some() {
                out.push(a.iter().filter_map(position).collect());
            } else {
                a.iter().for_each(|x| walk(x, out));
            }
        }
    }
    let mut out = Vec::new();
    walk(&geometry["coordinates"], &mut out);
    if let Some(members) = geometry["geometries"].as_array() {
        members.iter().for_each(|g| walk(&g["coordinates"], &mut out));
    }
    out
}

/// The first position of a geometry (to order features by).
fn first_position(geometry: &Value) -> Option<[f64; 2]> {
    runs(geometry).first().and_then(|r| r.first().copied())
}

/// Whether two runs hold the same positions within `tolerance` degrees, in the same or the
/// reverse order: a Shapefile's outer rings turn clockwise, GeoJSON's counter-clockwise.
fn same_run(a: &[[f64; 2]], b: &[[f64; 2]], tolerance: f64) -> bool {
    let close = |p: &[f64; 2], q: &[f64; 2]| (p[0] - q[0]).abs() <= tolerance && (p[1] - q[1]).abs() <= tolerance;
    a.len() == b.len()
        && (a.iter().zip(b).all(|(p, q)| close(p, q)) || a.iter().zip(b.iter().rev()).all(|(p, q)| close(p, q)))
}

/// Whether a value survived the format, allowing what the format forces: DBF and CSV keep
/// numbers as decimal text (equal to 1e-9 relative), formats of doubles cannot keep a
/// number's excess digits, DBF has no null text (an empty string), CSV has no types but those
/// geoflow reads back from the text.
fn same_value(key: &str, reference: &Value, copy: &Value, variant: &str) -> bool {
    match (reference, copy) {
        // A GeoPackage row's fid is its feature id (as GDAL's FID): the GeoJSON had none.
        (Value::Null, Value::Number(_)) if key == "feature_id" && variant.starts_with("gpkg") => true,
        (a, b) if a == b => true,
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            (a - b).abs() <= 1e-9 * a.abs().max(1.0)
        }
        (Value::Null, Value::String(s)) | (Value::String(s), Value::Null)
            if variant.starts_with("shp") || variant == "csv" =>
        {
            s.is_empty()
        }
        // A GeoJSON number with more digits than a double keeps is stored as its exact text;
        // formats of doubles keep the double.
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            s.parse::<f64>().is_ok_and(|v| (v - n.as_f64().unwrap()).abs() <= 1e-9 * v.abs().max(1.0))
        }
        (Value::Bool(b), Value::String(s)) | (Value::String(s), Value::Bool(b)) if variant == "csv" => {
            s.eq_ignore_ascii_case(&b.to_string())
        }
        _ => false,
    }
}

/// Features in an order of their own content: GDAL writes a FlatGeobuf's features in the
/// order of its spatial index, not the source's.
fn in_content_order(features: &[Value]) -> Vec<Value> {
    let key = |f: &Value| {
        let properties: Vec<String> = properties(f).iter().map(|(_, v)| v.to_string()).collect();
        format!("{properties:?}{:?}", first_position(&f["geometry"]))
    };
    let mut sorted = features.to_vec();
    sorted.sort_by_cached_key(key);
    sorted
}

fn compare(reference: &[Value], copy: &[Value], what: &str, variant: &str, tolerance: f64) {
    let (reference, copy) = if variant.starts_with("fgb") {
        // GDAL's FlatGeobuf writer leaves out features without a geometry.
        let with_geometry: Vec<Value> = reference.iter().filter(|f| !f["geometry"].is_null()).cloned().collect();
        (in_content_order(&with_geometry), in_content_order(copy))
    } else {
        (reference.to_vec(), copy.to_vec())
    };
    assert_eq!(reference.len(), copy.len(), "{what}: feature count");
    for (i, (r, c)) in reference.iter().zip(&copy).enumerate() {
        let (rp, cp) = (properties(r), properties(c));
        assert_eq!(rp.len(), cp.len(), "{what}: feature {i}: properties {rp:?} against {cp:?}");
        // By position: a DBF keeps ten characters of a name, so names may differ.
        for ((rk, rv), (ck, cv)) in rp.iter().zip(&cp) {
            assert!(same_value(rk, rv, cv, variant), "{what}: feature {i}: {rk} = {rv} became {ck} = {cv}");
        }
        let (rg, cg) = (runs(&r["geometry"]), runs(&c["geometry"]));
        assert_eq!(rg.len(), cg.len(), "{what}: feature {i}: lines and rings");
        for (n, (a, b)) in rg.iter().zip(&cg).enumerate() {
            let first_difference =
                a.iter().zip(b).find(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs()) > tolerance);
            assert!(
                same_run(a, b, tolerance),
                "{what}: feature {i}: run {n} of {} positions differs beyond {tolerance}°, first at {first_difference:?}",
                a.len()
            );
        }
    }
}

/// Loads every variant of every Natural Earth file into `database` and compares it with the
/// GeoJSON's load. `read` gives a dataset's features as GDAL reads them back.
fn round_trips(database: &Path, read: &dyn Fn(&str) -> Vec<Value>) {
    let Some(shared) = shared_dir() else { return };
    let mut files: Vec<PathBuf> = std::fs::read_dir(shared.join("data/naturalearth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "geojson"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "Natural Earth files in {}", shared.display());
    for (n, src) in files.iter().enumerate() {
        let file = src.file_name().unwrap().to_string_lossy().into_owned();
        let reference_name = format!("ref_{n}");
        let run = ingest(database, src, &reference_name, &[]);
        assert_eq!(run.summary["status"], "loaded", "{file}: {}", run.summary);
        let invalid = run.summary["invalid"].clone();
        let reference = read(&reference_name);
        for variant in VARIANTS {
            let dir = scratch();
            let crs = projected_crs(&file);
            let Some(copy) = (variant.make)(src, dir.path(), crs) else { continue };
            let dataset = format!("v{n}_{}", variant.name);
            let run = ingest(database, &copy, &dataset, &[]);
            let what = format!("{file} as {}", variant.name);
            assert_eq!(run.summary["status"], "loaded", "{what}: {}", run.summary);
            assert_eq!(run.summary["invalid"], invalid, "{what}: {}", run.summary);
            if variant.projected {
                let named = run.summary["source_crs"].as_str().unwrap_or_default();
                assert!(named.starts_with(crs), "{what}: source_crs {named:?}");
            }
            // A position projected by ogr2ogr and brought back by geoflow is PROJ's round
            // trip: within 1e-9° (0.1 mm) for these projections.
            let tolerance = if variant.projected { 1e-9 } else { 1e-12 };
            compare(&reference, &read(&dataset), &what, variant.name, tolerance);
        }
        eprintln!("{file}: {} variants load the same {} features", VARIANTS.len(), reference.len());
    }
}

#[test]
fn natural_earth_in_every_format_loads_the_same_features_into_a_geopackage() {
    if !have_tool("ogr2ogr") {
        return;
    }
    let tmp = scratch();
    let gpkg = tmp.path().join("formats.gpkg");
    round_trips(&gpkg, &|dataset| ogr_features(&gpkg, dataset));
}

#[tokio::test(flavor = "multi_thread")]
async fn natural_earth_in_every_format_loads_the_same_features_into_postgis() {
    if !have_tool("ogr2ogr") {
        return;
    }
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    let url = db.url().to_string();
    let conninfo = libpq_conninfo(&url);
    tokio::task::spawn_blocking(move || {
        round_trips(Path::new(&url), &|dataset| {
            ogr_features(Path::new(&format!("PG:{conninfo}")), &format!("datasets.{dataset}"))
        })
    })
    .await
    .unwrap();
}
