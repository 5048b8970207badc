//! Errors as RFC 9457 problem details: `application/problem+json` with a stable `type` per
//! kind of failure, so that clients branch on the type and show the detail.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Where problem types live: `type` is this base followed by the kind.
pub const PROBLEM_BASE: &str = "https://geoflow.dev/problems/";

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// A URI naming the kind of problem; stable across releases.
    #[schema(example = "https://geoflow.dev/problems/not-found")]
    pub r#type: String,
    /// The HTTP status text.
    pub title: String,
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, kind, detail: detail.into(), headers: Vec::new() }
    }

    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, kind, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// A backend (database, queue, storage) failed or did not answer: worth retrying.
    pub fn unavailable(what: &str, e: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("{what}: {e}"))
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            r#type: format!("{PROBLEM_BASE}{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_string(&self.body()).unwrap_or_default();
        let mut response =
            (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"))], body)
                .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
