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
/// Web Mercator for points (none beyond ±85°), CONUS Albers for North America, Equal Earth
/// for the world's polygons (Mercator has no image of the poles).
fn projected_crs(file: &str) -> &'static str {
    if file.contains("north_america") {
        "EPSG:5070"
    } else if file.contains("airports") || file.contains("ports") || file.contains("places") {
        "EPSG:3857"
    } else {
        "EPSG:8857"
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

/// Every position of a geometry, sorted: ring orientation and part order are the format's
/// business (a Shapefile's outer rings turn clockwise), the positions are not.
fn positions(geometry: &Value) -> Vec<[f64; 2]> {
    fn walk(v: &Value, out: &mut Vec<[f64; 2]>) {
        match v.as_array() {
            Some(a) if a.first().is_some_and(Value::is_number) => {
                out.push([a[0].as_f64().unwrap(), a[1].as_f64().unwrap()]);
            }
            Some(a) => a.iter().for_each(|x| walk(x, out)),
            None => {}
        }
    }
    let mut out = Vec::new();
    walk(&geometry["coordinates"], &mut out);
    if let Some(members) = geometry["geometries"].as_array() {
        members.iter().for_each(|g| walk(&g["coordinates"], &mut out));
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

/// Whether a value survived the format, allowing what the format forces: DBF and CSV keep
/// numbers as decimal text (equal to 1e-9 relative), DBF has no null text (an empty string),
/// CSV has no types but those geoflow reads back from the text.
fn same_value(reference: &Value, copy: &Value, variant: &str) -> bool {
    match (reference, copy) {
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
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) if variant == "csv" => {
            s.parse::<f64>().is_ok_and(|v| (v - n.as_f64().unwrap()).abs() <= 1e-9 * v.abs().max(1.0))
        }
        (Value::Bool(b), Value::String(s)) | (Value::String(s), Value::Bool(b)) if variant == "csv" => {
            s.eq_ignore_ascii_case(&b.to_string())
        }
        _ => false,
    }
}

fn compare(reference: &[Value], copy: &[Value], what: &str, variant: &str, tolerance: f64) {
    assert_eq!(reference.len(), copy.len(), "{what}: feature count");
    for (i, (r, c)) in reference.iter().zip(copy).enumerate() {
        let (rp, cp) = (properties(r), properties(c));
        assert_eq!(rp.len(), cp.len(), "{what}: feature {i}: properties {rp:?} against {cp:?}");
        // By position: a DBF keeps ten characters of a name, so names may differ.
        for ((rk, rv), (ck, cv)) in rp.iter().zip(&cp) {
            assert!(same_value(rv, cv, variant), "{what}: feature {i}: {rk} = {rv} became {ck} = {cv}");
        }
        let (rg, cg) = (positions(&r["geometry"]), positions(&c["geometry"]));
        assert_eq!(rg.len(), cg.len(), "{what}: feature {i}: positions");
        for (a, b) in rg.iter().zip(&cg) {
            let off = (a[0] - b[0]).abs().max((a[1] - b[1]).abs());
            assert!(off <= tolerance, "{what}: feature {i}: {a:?} became {b:?} ({off}°)");
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
            // A position read through a projection and back is PROJ's round trip: well
            // under a millimetre.
            let tolerance = if variant.projected { 1e-8 } else { 1e-12 };
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
