//! `/healthz` (the process answers) and `/readyz` (it can do its work: the database answers
//! with its catalog migrated, the queue and object storage are reachable): what a load
//! balancer's target group and a container health check ask.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::{Problem, ProblemBody};
use super::AppState;

/// How long one backend may take to answer a readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process answers", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Database (migrated), queue and object storage all answer", body = Health),
        (status = 503, description = "A backend does not answer; the detail says which", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let (database, queue, storage) = tokio::join!(
        probe(async { state.catalog.check_ready().await.map_err(|e| e.to_string()) }),
        probe(async { state.queue.probe().await.map_err(|e| e.to_string()) }),
        probe(async { state.storage.probe().await.map_err(|e| e.to_string()) }),
    );
    let failures: Vec<String> = [("database", database), ("queue", queue), ("object storage", storage)]
        .into_iter()
        .filter_map(|(what, result)| result.err().map(|e| format!("{what}: {e}")))
        .collect();
    if failures.is_empty() {
        Ok(Json(Health { status: "ready" }))
    } else {
        tracing::warn!(failures = %failures.join("; "), "not ready");
        Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("not ready: {}", failures.join("; ")))
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5")))
    }
}

async fn probe(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}
