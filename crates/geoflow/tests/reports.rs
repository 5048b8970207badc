//! Daily reports end to end: uploads through the API, the report written to object storage
//! (in process and by `geoflow report`), served by `/v1/reports`, valid against the committed
//! JSON Schema, reproducible, and a failing run leaving the previous report alone.

mod support;

use std::path::Path;

use geoflow::reports;
use geoflow::storage::StorageUrl;
use serde_json::Value;
use support::app::{assert_problem, spawn_app, with_token, TOKEN};

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../../docs/report.schema.json");
    jsonschema::validator_for(&serde_json::from_str(text).unwrap()).expect("the report schema is valid JSON Schema")
}

/// Fails with every schema violation of `report`.
fn assert_valid(report: &Value) {
    let errors: Vec<String> = schema().iter_errors(report).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "the report breaks docs/report.schema.json: {errors:#?}\n{report:#}");
}

/// The report without the one member that changes when it is recomputed.
fn without_generated_at(mut report: Value) -> Value {
    report.as_object_mut().unwrap().remove("generated_at");
    report
}

/// Three points, one of them out of range (skipped), one line.
const MIXED: &str = r#"{"type":"FeatureCollection","features":[
 {"type":"Feature","properties":{"n":1},"geometry":{"type":"Point","coordinates":[10,20]}},
 {"type":"Feature","properties":{"n":2},"geometry":{"type":"Point","coordinates":[11,21]}},
 {"type":"Feature","properties":{"n":3},"geometry":{"type":"Point","coordinates":[500,20]}},
 {"type":"Feature","properties":{"n":4},"geometry":{"type":"LineString","coordinates":[[0,0],[0,1]]}}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_uploads_is_reported_and_served() {
    let app = spawn_app(with_token()).await;
    let up = app.upload("/v1/datasets/sites/uploads?name=sites.geojson", "application/geo+json", MIXED).await;
    assert_eq!(up.status, 202, "{}", up.body);
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let bad =
        app.upload("/v1/datasets/sites/uploads?name=bad.geojson&on_invalid=reject", "application/geo+json", MIXED);
    let bad = bad.await;
    let failed = app.finished(bad.body["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    let storage = StorageUrl::Local(app.dir.path().join("objects")).open().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let today = now.date();
    let (report, key) = reports::publish(&*app.store, &storage, today, now).await.unwrap();
    assert_eq!(key, format!("reports/{today}.json"));
    let t = &report.activity.totals;
    assert_eq!((t.loads.succeeded, t.loads.failed, t.loads.skipped_duplicate), (1, 1, 0));
    // The rejected load read at least up to its invalid feature; only the first one stored.
    assert!(t.features.read >= 4 + 3, "{:?}", t.features);
    assert_eq!((t.features.loaded, t.features.invalid, t.features.skipped), (3, 2, 1));
    assert_eq!(t.invalid_reasons.get("out-of-range"), Some(&2));
    assert_eq!(t.geometry_types.get("Point"), Some(&2));
    assert_eq!(t.geometry_types.get("LineString"), Some(&1));
    // 1° of meridian near the equator is about 110.6 km.
    assert!((t.length_m - 110_574.0).abs() < 100.0, "{}", t.length_m);
    assert_eq!(t.extent, Some([0.0, 0.0, 11.0, 21.0]));
    assert_eq!(report.activity.end_of_day.feature_count, 3);
    assert_eq!(report.activity.failed_jobs.len(), 1);
    assert!(report.activity.failed_jobs[0].error.as_deref().unwrap().contains("reject"), "{:?}", report.activity);

    // Served as written, listed, validated by ETag; reads follow the API's auth.
    let listed = app.get("/v1/reports").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["reports"][0]["date"], today.to_string());
    let served = app.get(&format!("/v1/reports/{today}")).await;
    assert_eq!((served.status, served.content_type.as_str()), (200, "application/json"));
    assert_eq!(served.body, serde_json::to_value(&report).unwrap());
    assert_valid(&served.body);
    let etag = served.headers["etag"].clone();
    let again = app.http.get(app.url(&format!("/v1/reports/{today}"))).header("if-none-match", etag).send().await;
    assert_eq!(again.unwrap().status(), 304);
    assert_problem(&app.get("/v1/reports/2001-01-01").await, 404, "not-found");
    assert_problem(&app.get("/v1/reports/latest").await, 404, "not-found");

    // Recomputing the day gives the same report, generated_at aside.
    let (again, _) = reports::publish(&*app.store, &storage, today, time::OffsetDateTime::now_utc()).await.unwrap();
    let json = |r: &reports::Report| without_generated_at(serde_json::to_value(r).unwrap());
    assert_eq!(json(&again), json(&report));
    assert!(app.http.get(app.url("/v1/reports")).bearer_auth(TOKEN).send().await.unwrap().status().is_success());
}

fn report_cmd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = support::geoflow();
    cmd.arg("report")
        .args(["--database"])
        .arg(dir.join("geoflow.gpkg"))
        .arg("--storage")
        .arg(dir.join("objects"))
        .args(args)
        .env_remove("RUN_DATE")
        .envs(env.iter().copied());
    cmd.output().expect("geoflow runs")
}

#[test]
fn geoflow_report_writes_a_day_and_a_failed_run_keeps_the_last_report() {
    let dir = support::scratch();
    let input = dir.path().join("parks.geojson");
    std::fs::write(&input, support::collection(9, 3)).unwrap();
    let gpkg = dir.path().join("geoflow.gpkg");
    assert_eq!(support::ingest(&gpkg, &input, "parks", &[]).code, 0);
    let today = time::OffsetDateTime::now_utc().date().to_string();

    // The day of the load, named by flag and by RUN_DATE (as an ECS task override passes it):
    // the same bytes each time, but for generated_at.
    let path = dir.path().join(format!("objects/reports/{today}.json"));
    let mut bodies = Vec::new();
    for (args, env) in [(vec!["--date", today.as_str()], vec![]), (vec![], vec![("RUN_DATE", today.as_str())])] {
        let out = report_cmd(dir.path(), &args, &env);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("reports/{today}.json")));
        let body = std::fs::read_to_string(&path).unwrap();
        bodies.push(body.lines().filter(|l| !l.contains("\"generated_at\"")).collect::<Vec<_>>().join("\n"));
    }
    assert_eq!(bodies[0], bodies[1], "a recomputed report differs");
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_valid(&written);
    assert_eq!(written["totals"]["loads"]["succeeded"], 1);
    assert_eq!(written["datasets"][0]["end_of_day"]["feature_count"], 9);

    // A quiet day is a valid report of zeros.
    let out = report_cmd(dir.path(), &["--date", "2001-02-03"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let quiet: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("objects/reports/2001-02-03.json")).unwrap()).unwrap();
    assert_valid(&quiet);
    assert_eq!(
        (quiet["totals"]["loads"]["succeeded"].as_u64(), quiet["datasets"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );

    // Not a date: a usage error naming the form.
    let out = report_cmd(dir.path(), &["--date", "2026-02-30"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"), "{}", String::from_utf8_lossy(&out.stderr));

    // A run that cannot reach its database fails with the reason and leaves the report.
    let before = std::fs::read(&path).unwrap();
    let out = support::geoflow()
        .args(["report", "--date", &today, "--database", "postgres://geoflow@127.0.0.1:1/none?connect_timeout=2"])
        .arg("--storage")
        .arg(dir.path().join("objects"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the previous report is untouched");
}
