//! `GET /v1/reports` and `GET /v1/reports/{date}`: the daily reports, as written to object
//! storage by `geoflow report` (or by `geoflow serve`'s daily run).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::features::{digest, validated};
use super::problem::{Problem, ProblemBody};
use super::AppState;
use crate::reports::{self, Report};

/// A day that has a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportRef {
    /// The UTC day, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub date: String,
    /// Where the report is.
    pub href: String,
}

/// The days that have a report, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportList {
    pub reports: Vec<ReportRef>,
}

#[utoipa::path(
    get,
    path = "/v1/reports",
    tag = "reports",
    responses(
        (status = 200, description = "The days that have a report, newest first", body = ReportList),
        (status = 503, description = "Object storage is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ReportList>, Problem> {
    let dates = reports::dates(&state.storage).await.map_err(|e| Problem::unavailable("object storage", e))?;
    let reports = dates
        .into_iter()
        .map(|d| {
            let date = reports::format_date(d);
            ReportRef { href: format!("/v1/reports/{date}"), date }
        })
        .collect();
    Ok(Json(ReportList { reports }))
}

#[utoipa::path(
    get,
    path = "/v1/reports/{date}",
    tag = "reports",
    params(("date" = String, Path, format = Date, description = "The UTC day, YYYY-MM-DD")),
    responses(
        (status = 200, description = "The day's report, as written", body = Report),
        (status = 304, description = "The client's copy (If-None-Match) is current"),
        (status = 404, description = "No report for that day (or not a date)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Object storage is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn report(
    State(state): State<AppState>,
    Path(date): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let missing = || Problem::not_found(format!("no report for {date:?}: reports are named by UTC day, YYYY-MM-DD"));
    let day = reports::parse_date(&date).map_err(|_| missing())?;
    let key = reports::key(&state.storage, day);
    let found = state.storage.get_whole(&key).await.map_err(Problem::storage)?;
    let Some((body, meta)) = found else { return Err(missing()) };
    let etag = digest(&[&String::from_utf8_lossy(&body)]);
    let last_modified = meta.last_modified.to_rfc3339();
    let response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    Ok(validated(&headers, etag, Some(&last_modified), response))
}
