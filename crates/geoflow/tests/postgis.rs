//! `geoflow ingest` into PostGIS, read back by GDAL through its PostgreSQL driver.

mod support;

use serde_json::{json, Value};
use support::*;

/// Original property key → column name, as `geoflow datasets --json` reports them.
fn columns(database: &str, dataset: &str) -> std::collections::HashMap<String, String> {
    let out = geoflow().args(["datasets", "--json", "--database", database]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = all.as_array().unwrap().iter().find(|d| d["name"] == dataset).expect("dataset listed");
    d["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap().into(), c["column"].as_str().unwrap().into()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn natural_earth_round_trips_through_postgis() {
    let Some(shared) = shared_dir() else { return };
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    if !have_tool("ogrinfo") {
        return;
    }
    let url = db.url().to_string();
    let pg = std::path::PathBuf::from(format!("PG:{}", libpq_conninfo(&url)));
    let mut files: Vec<_> =
        std::fs::read_dir(shared.join("data/naturalearth")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in files {
        let dataset = file.file_stem().unwrap().to_str().unwrap().to_string();
        let (expected, source_extent, _) = ogr_layer(&file, None);
        let mut cmd = geoflow();
        cmd.arg("ingest").arg(&file).args([
            "--dataset",
            &dataset,
            "--json",
            "--on-invalid",
            "repair",
            "--database",
            &url,
        ]);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let summary: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "{dataset}: {summary}");
        assert_eq!(summary["features_read"], json!(expected));
        assert_eq!(summary["skipped"], json!(0), "{dataset}: {summary}");
        let (count, extent, _) = ogr_layer(&pg, Some(&format!("datasets.{dataset}")));
        assert_eq!(count, expected, "{dataset}");
        if summary["repaired"] == json!(0) {
            let (ours, theirs) = (extent.unwrap(), source_extent.unwrap());
            for k in 0..4 {
                assert!((ours[k] - theirs[k]).abs() < 1e-9, "{dataset}: extent {ours:?} vs {theirs:?}");
            }
        }
    }
    // Attribute values, through GDAL's reader of our table.
    let src = shared.join("data/naturalearth/ne_110m_admin_0_countries.geojson");
    let source: Value = serde_json::from_slice(&std::fs::read(&src).unwrap()).unwrap();
    let want = source["features"].as_array().unwrap();
    let columns = columns(&url, "ne_110m_admin_0_countries");
    let mut ours = ogr_features(&pg, "datasets.ne_110m_admin_0_countries");
    ours.sort_by_key(|f| f["properties"]["gf_feature_index"].as_i64());
    assert_eq!(ours.len(), want.len());
    for (i, (got, want)) in ours.iter().zip(want).enumerate() {
        for (key, value) in want["properties"].as_object().unwrap() {
            let got = &got["properties"][&columns[key]];
            let same = match (got, value) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => got == value,
            };
            assert!(same, "feature {i} {key}: {got} != {value}");
        }
    }
}

fn points(n: usize) -> String {
    let features: Vec<Value> = (0..n)
        .map(|i| json!({"type": "Feature", "id": i, "properties": {"n": i, "s": format!("f'{i}\";--")}, "geometry": {"type": "Point", "coordinates": [(i % 3000) as f64 / 20.0, (i / 3000) as f64 / 20.0]}}))
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

async fn psql_one(url: &str, sql: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_killed_mid_copy_leaves_the_previous_rows() {
    let Some(db) = geoflow_testkit::postgis_database().await else { return };
    let url = db.url().to_string();
    let tmp = scratch();
    let src = tmp.path().join("src.geojson");
    std::fs::write(&src, points(3)).unwrap();
    let run = {
        let (url, src) = (url.clone(), src.clone());
        tokio::task::spawn_blocking(move || ingest(std::path::Path::new(&url), &src, "kill", &[])).await.unwrap()
    };
    assert_eq!(run.summary["status"], "loaded", "{}", run.summary);
    std::fs::write(&src, points(300_000)).unwrap();
    let mut child = geoflow()
        .arg("ingest")
        .arg(&src)
        .args(["--dataset", "kill", "--json", "--database", &url])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it while COPY is streaming rows.
    let started = std::time::Instant::now();
    while psql_one(&url, "SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy").await < 1000 {
        assert!(child.try_wait().unwrap().is_none(), "the load finished before it could be killed");
        assert!(started.elapsed().as_secs() < 120);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(psql_one(&url, "SELECT count(*) FROM datasets.kill").await, 3, "the previous rows, and no partial ones");
    // The next run loads the new version completely.
    let run = tokio::task::spawn_blocking(move || ingest(std::path::Path::new(&url), &src, "kill", &[])).await.unwrap();
    assert_eq!(run.summary["status"], "loaded", "{}", run.summary);
    assert_eq!(run.summary["features_loaded"], json!(300_000));
}
