//! `GET /v1/jobs` and `GET /v1/jobs/{id}`: what happened to each upload and event.

use axum::extract::{Path, Query, State};
use axum::Json;
use geoflow_core::dataset::DatasetName;
use geoflow_store::{Job, JobQuery, JobStatus, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::{Problem, ProblemBody};
use super::AppState;

#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job: status, timings, the source, and the load's summary with its validation report", body = Job),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn job(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Job>, Problem> {
    match state.jobs.job(&id).await {
        Ok(Some(job)) => Ok(Json(job)),
        Ok(None) => Err(Problem::not_found(format!("no job {id:?}"))),
        Err(e) => Err(Problem::store("database", e)),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsParams {
    /// Only jobs of this dataset.
    #[param(pattern = "^[a-z][a-z0-9_]{0,62}$")]
    dataset: Option<String>,
    /// Only jobs in this status.
    #[param(value_type = Option<JobStatus>)]
    status: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only jobs created before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page size (default 100, at most 1000).
    #[param(minimum = 0)]
    limit: Option<usize>,
    /// The `next_before` of the previous page.
    before: Option<String>,
}

/// One page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// The cursor of the next page (pass it as `before`); null on the last page.
    pub next_before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(JobsParams),
    responses(
        (status = 200, description = "Jobs, newest first", body = JobPage),
        (status = 400, description = "A bad filter or cursor", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn list_jobs(State(state): State<AppState>, Query(p): Query<JobsParams>) -> Result<Json<JobPage>, Problem> {
    let bad = |detail: String| Problem::bad_request("invalid-parameter", detail);
    let dataset = p.dataset.map(|d| DatasetName::new(&d).map_err(|e| bad(format!("dataset: {e}")))).transpose()?;
    let status = p
        .status
        .map(|s| {
            serde_json::from_value::<JobStatus>(serde_json::json!(s)).map_err(|_| {
                bad(format!("status {s:?}: expected queued, running, succeeded, failed or skipped-duplicate"))
            })
        })
        .transpose()?;
    let query =
        JobQuery { dataset, status, limit: p.limit.unwrap_or(0), before: p.before, since: p.since, until: p.until };
    match state.jobs.jobs(&query).await {
        Ok(jobs) => {
            let next_before =
                (jobs.len() == query.effective_limit()).then(|| jobs.last().map(|j| j.id.clone())).flatten();
            Ok(Json(JobPage { jobs, next_before }))
        }
        Err(e @ StoreError::Invalid(_)) => Err(bad(e.to_string())),
        Err(e) => Err(Problem::store("database", e)),
    }
}
