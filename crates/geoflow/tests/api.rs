//! The HTTP API against a real GeoPackage store and object folder, on a free port; and
//! `geoflow healthcheck` against it.

mod support;

use std::sync::Arc;

use geoflow::api::{router, AppState};
use geoflow::storage::StorageUrl;
use geoflow_core::dataset::DatasetName;
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::{JobAction, NewJob, Store};
use serde_json::Value;

struct App {
    _dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    store: Arc<dyn Store>,
}

async fn spawn_app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let gpkg = dir.path().join("geoflow.gpkg");
    let store: Arc<dyn Store> =
        Arc::new(tokio::task::spawn_blocking(move || GeoPackageStore::open(&gpkg)).await.unwrap().unwrap());
    let storage = StorageUrl::Local(dir.path().join("objects")).open().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(AppState { store: store.clone(), storage });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App { _dir: dir, addr, store }
}

async fn get(app: &App, path: &str) -> (u16, String, Value) {
    let response = reqwest::get(format!("http://{}{path}", app.addr)).await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    (status, content_type, body)
}

fn assert_problem((status, content_type, body): &(u16, String, Value), expected: u16, kind: &str) {
    assert_eq!(*status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["status"], expected);
    assert_eq!(body["type"], format!("https://geoflow.dev/problems/{kind}"));
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
}

#[tokio::test]
async fn health_jobs_and_datasets_over_http() {
    let app = spawn_app().await;
    let (status, _, body) = get(&app, "/healthz").await;
    assert_eq!((status, &body["status"]), (200, &Value::from("ok")));
    let (status, _, body) = get(&app, "/readyz").await;
    assert_eq!((status, &body["status"]), (200, &Value::from("ready")));

    let job = NewJob {
        id: "job-1".into(),
        dataset: DatasetName::new("roads").unwrap(),
        source: "raw/roads/2026-11-22/a.geojson".into(),
        action: JobAction::Load,
        object_version: None,
    };
    app.store.upsert_job(&job).await.unwrap();
    let (status, _, body) = get(&app, "/v1/jobs/job-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["status"], &body["source"]), (&Value::from("queued"), &Value::from(job.source.as_str())));

    let (status, _, body) = get(&app, "/v1/jobs?dataset=roads&status=queued").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
    let (_, _, body) = get(&app, "/v1/jobs?dataset=parks").await;
    assert_eq!(body["jobs"].as_array().unwrap().len(), 0);
    let (status, _, body) = get(&app, "/v1/datasets").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["datasets"].is_array());

    assert_problem(&get(&app, "/v1/jobs/nope").await, 404, "not-found");
    assert_problem(&get(&app, "/v1/jobs?status=done").await, 400, "invalid-parameter");
    assert_problem(&get(&app, "/v1/jobs?dataset=Bad%20Name").await, 400, "invalid-parameter");
    assert_problem(&get(&app, "/v1/jobs?before=unknown-cursor").await, 400, "invalid-parameter");
    assert_problem(&get(&app, "/no/such/route").await, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_when_ready_and_1_otherwise() {
    let app = spawn_app().await;
    let healthcheck = |listen: String| {
        tokio::task::spawn_blocking(move || {
            support::geoflow().args(["healthcheck", "--listen", &listen]).status().unwrap().code()
        })
    };
    assert_eq!(healthcheck(app.addr.to_string()).await.unwrap(), Some(0));
    // Nothing listens on a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert_eq!(healthcheck(free.to_string()).await.unwrap(), Some(1));
}

#[test]
fn version_names_the_release_and_the_revision() {
    let out = support::geoflow().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    let expected = format!("geoflow {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    let revision = version.trim().trim_start_matches(&expected).trim_end_matches(')');
    assert!(revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
}
