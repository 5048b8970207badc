//! Helpers for tests that run the `geoflow` binary and read its output with GDAL.
#![allow(dead_code)]

pub mod app;
pub mod race;
pub mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// `../shared` beside the repository (or `GEOFLOW_SHARED_DIR`): test data, never needed at run time.
/// `None` (with the reason printed) when it is absent, unless `GEOFLOW_REQUIRE_SHARED=1`.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("GEOFLOW_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    if dir.join("data").is_dir() {
        return Some(dir);
    }
    if std::env::var("GEOFLOW_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("GEOFLOW_REQUIRE_SHARED=1 but the shared test data is missing at {}", dir.display());
    }
    eprintln!("skipped: shared test data not found at {} (set GEOFLOW_SHARED_DIR)", dir.display());
    None
}

/// Whether an external tool (e.g. `ogrinfo`) is on the PATH. Missing tools skip the test with
/// a printed reason, unless `GEOFLOW_REQUIRE_TOOLS=1`.
pub fn have_tool(name: &str) -> bool {
    let found = Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if !found {
        if std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("GEOFLOW_REQUIRE_TOOLS=1 but {name} is not installed");
        }
        eprintln!("skipped: {name} is not installed");
    }
    found
}

pub fn geoflow() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_geoflow"));
    cmd.env_remove("GEOFLOW_DATABASE_URL").env("GEOFLOW_LOG", "warn");
    cmd
}

/// The result of `geoflow ingest --json`.
pub struct Ingested {
    pub code: i32,
    pub summary: Value,
    pub stderr: String,
}

/// Runs `geoflow ingest <input> --dataset <dataset> --database <gpkg> --json [extra…]`.
pub fn ingest(gpkg: &Path, input: &Path, dataset: &str, extra: &[&str]) -> Ingested {
    let mut cmd = geoflow();
    cmd.arg("ingest").arg(input).args(["--dataset", dataset, "--json", "--database"]).arg(gpkg).args(extra);
    finish(cmd.output().expect("geoflow runs"))
}

/// Same, feeding `stdin` to `geoflow ingest -`.
pub fn ingest_stdin(gpkg: &Path, stdin: &[u8], dataset: &str, extra: &[&str]) -> Ingested {
    let mut cmd = geoflow();
    cmd.args(["ingest", "-", "--dataset", dataset, "--json", "--database"]).arg(gpkg).args(extra);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("geoflow runs");
    let mut pipe = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    finish(out)
}

fn finish(out: Output) -> Ingested {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "geoflow panicked: {stderr}");
    let summary = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON summary ({e}): stdout={stdout} stderr={stderr}"));
    Ingested { code: out.status.code().unwrap_or(-1), summary, stderr }
}

/// `ogrinfo -ro -so -al`: (feature count, extent) of one layer, and the full text output.
pub fn ogr_layer(path: &Path, layer: Option<&str>) -> (u64, Option<[f64; 4]>, String) {
    let mut cmd = Command::new("ogrinfo");
    cmd.args(["-ro", "-so"]).arg(path);
    match layer {
        Some(l) => cmd.arg(l),
        None => cmd.arg("-al"),
    };
    let out = cmd.output().expect("ogrinfo runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ogrinfo failed on {}: {err}", path.display());
    assert!(!err.contains("Warning") && !err.contains("ERROR"), "ogrinfo complained about {}: {err}", path.display());
    let count =
        text.lines().filter_map(|l| l.strip_prefix("Feature Count: ")).map(|n| n.trim().parse::<u64>().unwrap()).sum();
    let extent = text.lines().find_map(|l| l.strip_prefix("Extent: ")).map(|e| {
        let nums: Vec<f64> = e
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e'))
            .filter(|s| !s.is_empty() && *s != "-")
            .map(|s| s.parse().unwrap())
            .collect();
        [nums[0], nums[1], nums[2], nums[3]]
    });
    (count, extent, text)
}

/// The rows of a layer as GeoJSON features, read back by `ogr2ogr` (GDAL's own reader).
pub fn ogr_features(gpkg: &Path, layer: &str) -> Vec<Value> {
    let out = Command::new("ogr2ogr")
        .args(["-f", "GeoJSON", "/vsistdout/"])
        .arg(gpkg)
        .arg(layer)
        .output()
        .expect("ogr2ogr runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("Warning") && !err.contains("ERROR"),
        "ogr2ogr on {}: {err}",
        gpkg.display()
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ogr2ogr writes GeoJSON");
    v["features"].as_array().cloned().unwrap_or_default()
}

/// A `postgres://` URL as libpq's `key=value` connection string, which GDAL and QGIS take.
pub fn libpq_conninfo(url: &str) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let mut conn = format!(
        "dbname='{}' host='{host}' port={} user='{}'",
        config.get_dbname().unwrap(),
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap(),
    );
    if let Some(password) = config.get_password() {
        conn.push_str(&format!(" password='{}'", String::from_utf8_lossy(password)));
    }
    conn
}

pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A FeatureCollection of `n` points whose coordinates and properties depend on `seed`, with
/// hostile property values (quotes, SQL) among them.
/// A FeatureCollection of points keyed by a `code` property: `code-{i}` for each `i` of
/// `codes`, each named `name`.
#[allow(dead_code)]
pub fn coded(codes: std::ops::Range<usize>, name: &str) -> String {
    let features: Vec<String> = codes
        .map(|i| {
            let (x, y) = ((i % 360) as f64 - 179.5, (i % 170) as f64 - 85.0);
            format!(
                r#"{{"type":"Feature","properties":{{"code":"code-{i}","name":"{name}"}},"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}"#
            )
        })
        .collect();
    format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(",\n"))
}

/// The `name` of each stored feature of a dataset of [`coded`] features, by code; each code
/// once.
#[allow(dead_code)]
pub async fn names_by_code(
    store: &dyn geoflow_store::Store,
    dataset: &str,
) -> std::collections::BTreeMap<String, String> {
    let dataset = geoflow_core::dataset::DatasetName::new(dataset).unwrap();
    let everything = geoflow_store::FeatureQuery { limit: usize::MAX, ..Default::default() };
    let stored = store.features(&dataset, &everything).await.unwrap();
    let stored = futures_util::TryStreamExt::try_collect::<Vec<_>>(stored).await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    for feature in stored {
        let f: serde_json::Value = serde_json::from_str(&feature.json).unwrap();
        let code = f["properties"]["code"].as_str().unwrap().to_string();
        let name = f["properties"]["name"].as_str().unwrap().to_string();
        assert!(out.insert(code.clone(), name).is_none(), "{code} twice");
    }
    out
}

pub fn collection(n: usize, seed: usize) -> String {
    let features: Vec<String> = (0..n)
        .map(|i| {
            let (x, y) = (((i * 7 + seed) % 360) as f64 - 179.5, ((i * 3 + seed) % 170) as f64 - 85.0);
            format!(
                r#"{{"type":"Feature","id":{i},"properties":{{"name":"f{seed}-{i}","rank":{i},"note":"x'; DROP TABLE t; --","label":"it's \"quoted\""}},"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}"#
            )
        })
        .collect();
    format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(",\n"))
}
