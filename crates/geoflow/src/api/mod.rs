//! The HTTP API: health for load balancers and containers, and read access to jobs and
//! datasets. Errors are RFC 9457 problem details (`application/problem+json`) with a stable
//! `type`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use geoflow_core::dataset::DatasetName;
use geoflow_store::{JobQuery, JobStatus, Store};
use serde::Deserialize;
use serde_json::json;

use crate::storage::Storage;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub storage: Storage,
}

pub fn router(state: AppState) -> Router {
    health_routes()
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/datasets", get(datasets))
        .fallback(not_found)
        .with_state(state)
}

/// Liveness and readiness only: what a worker serves for its container health check.
pub fn health_router(state: AppState) -> Router {
    health_routes().fallback(not_found).with_state(state)
}

fn health_routes() -> Router<AppState> {
    Router::new().route("/healthz", get(|| async { Json(json!({ "status": "ok" })) })).route("/readyz", get(readyz))
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such resource")
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, kind, detail: detail.into() }
    }

    fn unavailable(what: &str, e: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("{what}: {e}"))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("https://geoflow.dev/problems/{}", self.kind),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    }
}

/// Ready when the catalog answers (migrated) and object storage is reachable.
async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Problem> {
    let within = Duration::from_secs(5);
    let probe = JobQuery { limit: 1, ..JobQuery::default() };
    match tokio::time::timeout(within, state.store.jobs(&probe)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Problem::unavailable("database", e)),
        Err(_) => return Err(Problem::unavailable("database", "no answer within 5 s")),
    }
    match tokio::time::timeout(within, state.storage.head("readyz")).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Problem::unavailable("object storage", e)),
        Err(_) => return Err(Problem::unavailable("object storage", "no answer within 5 s")),
    }
    Ok(Json(json!({ "status": "ready" })))
}

async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, Problem> {
    match state.store.job(&id).await {
        Ok(Some(job)) => Ok(Json(job).into_response()),
        Ok(None) => Err(Problem::new(StatusCode::NOT_FOUND, "not-found", format!("no job {id:?}"))),
        Err(e) => Err(Problem::unavailable("database", e)),
    }
}

#[derive(Debug, Deserialize)]
struct JobsParams {
    dataset: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

async fn list_jobs(State(state): State<AppState>, Query(p): Query<JobsParams>) -> Result<Response, Problem> {
    let bad = |detail: String| Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", detail);
    let dataset = p.dataset.map(|d| DatasetName::new(&d).map_err(|e| bad(format!("dataset: {e}")))).transpose()?;
    let status = p
        .status
        .map(|s| {
            serde_json::from_value::<JobStatus>(json!(s)).map_err(|_| {
                bad(format!("status {s:?}: expected queued, running, succeeded, failed or skipped-duplicate"))
            })
        })
        .transpose()?;
    let query = JobQuery { dataset, status, limit: p.limit.unwrap_or(0), before: p.before };
    match state.store.jobs(&query).await {
        Ok(jobs) => {
            let next = (jobs.len() == query.effective_limit()).then(|| jobs.last().map(|j| j.id.clone())).flatten();
            Ok(Json(json!({ "jobs": jobs, "next_before": next })).into_response())
        }
        Err(e @ geoflow_store::StoreError::Invalid(_)) => Err(bad(e.to_string())),
        Err(e) => Err(Problem::unavailable("database", e)),
    }
}

async fn datasets(State(state): State<AppState>) -> Result<Response, Problem> {
    match state.store.datasets().await {
        Ok(datasets) => Ok(Json(json!({ "datasets": datasets })).into_response()),
        Err(e) => Err(Problem::unavailable("database", e)),
    }
}

/// `geoflow healthcheck`: whether the service listening on `listen` answers ready. A plain
/// HTTP/1.1 request, so that a container needs no curl.
pub async fn healthcheck(listen: &str) -> anyhow::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: std::net::SocketAddr = listen.parse()?;
    let target = if addr.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(target).await?;
        stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
        let mut head = vec![0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    Ok(tokio::time::timeout(Duration::from_secs(5), exchange).await.unwrap_or(Ok(false)).unwrap_or(false))
}
