//! Memory does not grow with the file: a FeatureCollection, a CSV, a zipped Shapefile and a
//! GeoParquet file far larger than the memory budget ingest with a bounded peak RSS.

mod support;

use std::io::Write;

use support::*;

/// Peak RSS of the largest child process waited for so far, in bytes.
fn children_peak_rss() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_large_feature_collection_ingests_in_bounded_memory() {
    // GEOFLOW_MEMORY_TEST_MB raises the size (1024 for the 1 GB check).
    let megabytes: u64 = std::env::var("GEOFLOW_MEMORY_TEST_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let tmp = scratch();
    let path = tmp.path().join("large.geojson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(br#"{"type":"FeatureCollection","features":["#).unwrap();
    let mut written = 0u64;
    let mut n = 0u64;
    while written < megabytes << 20 {
        let (x, y) = ((n % 3500) as f64 / 10.0 - 175.0, ((n / 3500) % 1700) as f64 / 10.0 - 85.0);
        let ring: Vec<String> = (0..40)
            .map(|i| {
                let a = i as f64 / 40.0 * std::f64::consts::TAU;
                format!("[{:.6},{:.6}]", x + 0.01 * a.cos(), y + 0.01 * a.sin())
            })
            .collect();
        let feature = format!(
            r#"{}{{"type":"Feature","id":{n},"properties":{{"name":"feature {n}","value":{},"tags":{{"k":[{n},"v"]}}}},"geometry":{{"type":"Polygon","coordinates":[[{},{}]]}}}}"#,
            if n == 0 { "" } else { ",\n" },
            n as f64 * 0.5,
            ring.join(","),
            ring[0]
        );
        out.write_all(feature.as_bytes()).unwrap();
        written += feature.len() as u64;
        n += 1;
    }
    out.write_all(b"]}\n").unwrap();
    out.flush().unwrap();
    drop(out);
    let gpkg = tmp.path().join("large.gpkg");
    let run = ingest(&gpkg, &path, "large", &[]);
    assert_eq!(run.code, 0, "{}", run.summary);
    assert_eq!(run.summary["features_loaded"].as_u64(), Some(n), "{}", run.summary);
    let peak = children_peak_rss();
    eprintln!("{} MB, {n} features: peak RSS {} MiB", written >> 20, peak >> 20);
    assert!(peak < 256 << 20, "peak RSS {} MiB for a {} MB file", peak >> 20, written >> 20);
}

/// The size of the files of the format tests, in MB (`GEOFLOW_MEMORY_TEST_MB=2048` for the
/// 2 GB check).
fn format_megabytes() -> u64 {
    std::env::var("GEOFLOW_MEMORY_TEST_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(150)
}

/// A 40-vertex ring around the `n`th point of a grid, as WKT.
fn wkt_polygon(n: u64) -> String {
    let (x, y) = ((n % 3500) as f64 / 10.0 - 175.0, ((n / 3500) % 1700) as f64 / 10.0 - 85.0);
    let ring: Vec<String> = (0..=40)
        .map(|i| {
            let a = (i % 40) as f64 / 40.0 * std::f64::consts::TAU;
            format!("{:.6} {:.6}", x + 0.01 * a.cos(), y + 0.01 * a.sin())
        })
        .collect();
    format!("POLYGON (({}))", ring.join(","))
}

/// Writes a CSV of polygons of about `megabytes`; returns its feature count.
fn write_csv(path: &std::path::Path, megabytes: u64) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"id,name,value,wkt\n").unwrap();
    let (mut written, mut n) = (0u64, 0u64);
    while written < megabytes << 20 {
        let line = format!("{n},feature {n},{},\"{}\"\n", n as f64 * 0.5, wkt_polygon(n));
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        n += 1;
    }
    out.flush().unwrap();
    n
}

/// Ingests `path` and checks every feature loaded with the peak RSS of the child under 256 MiB.
fn ingest_in_bounded_memory(path: &std::path::Path, expected: u64, what: &str) {
    let tmp = scratch();
    let gpkg = tmp.path().join("large.gpkg");
    let run = ingest(&gpkg, path, "large", &[]);
    assert_eq!(run.code, 0, "{what}: {}", run.summary);
    assert_eq!(run.summary["features_loaded"].as_u64(), Some(expected), "{what}: {}", run.summary);
    let peak = children_peak_rss();
    let size = std::fs::metadata(path).unwrap().len();
    eprintln!("{what}, {} MB, {expected} features: peak RSS {} MiB", size >> 20, peak >> 20);
    assert!(peak < 256 << 20, "{what}: peak RSS {} MiB for a {} MB file", peak >> 20, size >> 20);
}

#[test]
fn a_large_csv_ingests_in_bounded_memory() {
    let tmp = scratch();
    let path = tmp.path().join("large.csv");
    let n = write_csv(&path, format_megabytes());
    ingest_in_bounded_memory(&path, n, "CSV");
}

#[test]
fn a_large_zipped_shapefile_ingests_in_bounded_memory() {
    if !have_tool("ogr2ogr") {
        return;
    }
    let tmp = scratch();
    let csv = tmp.path().join("large.csv");
    // A Shapefile holds about half the bytes of the WKT text of its polygons.
    let n = write_csv(&csv, format_megabytes() * 2);
    let shp = tmp.path().join("shp");
    std::fs::create_dir_all(&shp).unwrap();
    let out = std::process::Command::new("ogr2ogr")
        .args(["-f", "ESRI Shapefile"])
        .arg(shp.join("large.shp"))
        .arg(&csv)
        .args(["-oo", "GEOM_POSSIBLE_NAMES=wkt", "-oo", "KEEP_GEOM_COLUMNS=NO", "-a_srs", "EPSG:4326"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&csv).unwrap();
    let zip = tmp.path().join("large.zip");
    let script = "import sys, zipfile, pathlib\n\
        with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=1) as z:\n\
        \x20   for p in pathlib.Path(sys.argv[2]).iterdir(): z.write(p, p.name)\n";
    let out = std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&zip).arg(&shp).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&shp).unwrap();
    ingest_in_bounded_memory(&zip, n, "zipped Shapefile");
}

#[test]
fn a_large_geoparquet_file_ingests_in_bounded_memory() {
    let python =
        std::env::var("GEOFLOW_PYARROW_PYTHON").unwrap_or_else(|_| "/var/tmp/geoflow-pyarrow/bin/python".into());
    let ready = std::process::Command::new(&python).args(["-c", "import pyarrow, shapely"]).output();
    if !ready.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "GEOFLOW_REQUIRE_TOOLS=1 but {python} has no pyarrow and shapely"
        );
        eprintln!("skipped: {python} has no pyarrow and shapely (set GEOFLOW_PYARROW_PYTHON)");
        return;
    }
    let tmp = scratch();
    let path = tmp.path().join("large.parquet");
    // Row groups of 20,000 polygons, written as they are made; WKB is about as large as the
    // WKT text.
    let script = r#"
import json, math, sys
import pyarrow as pa, pyarrow.parquet as pq
import shapely
target, path = int(sys.argv[1]) << 20, sys.argv[2]
geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"]}}}
schema = pa.schema([("id", pa.int64()), ("name", pa.string()), ("value", pa.float64()), ("geometry", pa.binary())],
                   metadata={b"geo": json.dumps(geo).encode()})
n, written = 0, 0
with pq.ParquetWriter(path, schema, compression="snappy") as w:
    while written < target:
        ids = list(range(n, n + 20000))
        polys = []
        for k in ids:
            x, y = (k % 3500) / 10 - 175, ((k // 3500) % 1700) / 10 - 85
            ring = [(x + 0.01 * math.cos(i / 40 * math.tau), y + 0.01 * math.sin(i / 40 * math.tau)) for i in range(40)]
            polys.append(shapely.to_wkb(shapely.Polygon(ring)))
        w.write_table(pa.table({"id": ids, "name": [f"feature {k}" for k in ids], "value": [k * 0.5 for k in ids],
                                "geometry": polys}, schema=schema))
        n += len(ids)
        written += sum(len(p) for p in polys)
print(n)
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(format_megabytes().to_string())
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    ingest_in_bounded_memory(&path, n, "GeoParquet");
}
