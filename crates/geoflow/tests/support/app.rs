//! An in-process geoflow API on a free port over real backends — the embedded queue, an object
//! folder, and a GeoPackage or any other store — with a worker consuming what it queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use geoflow::api::{router, ApiConfig, AppState, Tokens};
use geoflow::storage::StorageUrl;
use geoflow::worker::{Worker, WorkerOptions};
use geoflow_queue::{EmbeddedOptions, EmbeddedQueue, Queue};
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::{Jobs, Store};
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub struct App {
    pub dir: tempfile::TempDir,
    pub addr: std::net::SocketAddr,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
}

/// The API with `config` on a fresh GeoPackage store, and a worker consuming what it queues.
pub async fn spawn_app(config: ApiConfig) -> App {
    let dir = tempfile::tempdir().unwrap();
    let gpkg = dir.path().join("geoflow.gpkg");
    let store: Arc<dyn Store> =
        Arc::new(tokio::task::spawn_blocking(move || GeoPackageStore::open(&gpkg)).await.unwrap().unwrap());
    spawn_app_on(store, dir, config).await
}

/// The API with `config` on `store`, keeping its objects and queue in `dir`.
pub async fn spawn_app_on(store: Arc<dyn Store>, dir: tempfile::TempDir, config: ApiConfig) -> App {
    spawn_app_with(store, None, dir, config).await
}

/// The API with `config` on a fresh GeoPackage store whose jobs role is `jobs` (an in-memory
/// one, say).
pub async fn spawn_app_with_jobs(config: ApiConfig, jobs: Arc<dyn Jobs>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let gpkg = dir.path().join("geoflow.gpkg");
    let store: Arc<dyn Store> =
        Arc::new(tokio::task::spawn_blocking(move || GeoPackageStore::open(&gpkg)).await.unwrap().unwrap());
    spawn_app_with(store, Some(jobs), dir, config).await
}

async fn spawn_app_with(
    store: Arc<dyn Store>,
    jobs: Option<Arc<dyn Jobs>>,
    dir: tempfile::TempDir,
    config: ApiConfig,
) -> App {
    geoflow::metrics::install();
    let storage = StorageUrl::Local(dir.path().join("objects")).open().unwrap();
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(dir.path().join("queue.sqlite"), EmbeddedOptions::default()).await.unwrap());
    let worker = Worker {
        queue: queue.clone(),
        store: store.clone(),
        storage: storage.clone(),
        options: WorkerOptions { wait: Duration::from_millis(200), parse_threads: 1, ..WorkerOptions::default() },
    };
    tokio::spawn(async move { worker.run(std::future::pending()).await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut state = AppState::new(store.clone(), storage, queue, config);
    if let Some(jobs) = jobs {
        state = state.with_jobs(jobs);
    }
    let app = router(state);
    tokio::spawn(async move { geoflow::api::serve(listener, app, std::future::pending()).await.unwrap() });
    App { dir, addr, store, http: reqwest::Client::new() }
}

pub fn with_token() -> ApiConfig {
    ApiConfig { tokens: Tokens::load(Some(TOKEN), None).unwrap(), ..ApiConfig::default() }
}

/// Status, content type, headers and JSON body of a response.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    Reply { status, content_type, headers, body }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn upload(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        let request = self.http.post(self.url(path)).bearer_auth(TOKEN).header("content-type", content_type);
        reply(request.body(body).send().await.unwrap()).await
    }

    /// Polls a job until it is final.
    pub async fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.get(&format!("/v1/jobs/{id}")).await;
            assert_eq!(job.status, 200, "{}", job.body);
            if job.body["finished_at"].is_string() {
                return job.body;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {}", job.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn assert_problem(reply: &Reply, expected: u16, kind: &str) {
    assert_eq!(reply.status, expected, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["status"], expected);
    assert_eq!(reply.body["type"], format!("https://geoflow.dev/problems/{kind}"));
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{}", reply.body);
}
