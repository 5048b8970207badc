//! Memory does not grow with the file: a FeatureCollection far larger than the memory budget
//! ingests with a bounded peak RSS.

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
