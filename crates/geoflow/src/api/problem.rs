//! Errors as RFC 9457 problem details: `application/problem+json` with a stable `type` per
//! kind of failure, so that clients branch on the type and show the detail.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use geoflow_store::{ErrorClass, StoreError};
use serde::Serialize;
use utoipa::ToSchema;

/// What a client is told of an error that is its own fault: the store's own words, but never
/// a database's message (which may quote values or name its objects).
fn client_detail(e: &StoreError) -> String {
    match e.root() {
        StoreError::Database { context, .. } => format!("the database cannot do this while {context}"),
        e => e.to_string(),
    }
}

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

    /// A backend (database, queue, storage) failed or did not answer: worth retrying. The
    /// answer names the backend only; the error, which may name hosts, paths or SQL, is logged.
    pub fn unavailable(what: &str, e: impl std::fmt::Display) -> Problem {
        tracing::warn!(backend = what, error = %e, "a backend is unavailable");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("the {what} is unavailable; try again"))
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// A fault of geoflow or of its stored state: nothing the client can change. The error is
    /// logged (find it by the response's `x-request-id`), never answered.
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Problem {
        tracing::error!(backend = what, error = %e, "internal error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("an internal error occurred in the {what}; it is logged with this request's id"),
        )
    }

    /// An object storage error, answered by its class: a refused permission or a bad path is
    /// the deployment's fault (500), anything else may pass (503).
    pub fn storage(e: object_store::Error) -> Problem {
        if crate::storage::error_class(&e).is_transient() {
            Problem::unavailable("object storage", e)
        } else {
            Problem::internal("object storage", e)
        }
    }

    /// A store error, answered by its class: 4xx only for the client's own fault.
    pub fn store(what: &str, e: StoreError) -> Problem {
        match e.class() {
            ErrorClass::BadInput => Problem::bad_request("invalid-parameter", client_detail(&e)),
            ErrorClass::NotFound => Problem::not_found(client_detail(&e)),
            ErrorClass::Conflict | ErrorClass::Superseded => {
                Problem::new(StatusCode::CONFLICT, "conflict", client_detail(&e))
            }
            ErrorClass::Unavailable => Problem::unavailable(what, e),
            _ => Problem::internal(what, e),
        }
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

/// axum's own rejections (a query string that does not parse, a path that is not UTF-8)
/// answer in plain text: this makes them problems like every other error.
pub async fn plain_errors_as_problems(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !plain || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 << 10).await.map(|b| String::from_utf8_lossy(&b).into_owned());
    let detail = text.ok().filter(|t| !t.is_empty()).unwrap_or_else(|| status.to_string());
    let kind = match status {
        StatusCode::BAD_REQUEST => "invalid-parameter",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        _ => "error",
    };
    let mut problem = Problem::new(status, kind, detail).into_response();
    for (name, value) in
        parts.headers.iter().filter(|(n, _)| *n != header::CONTENT_TYPE && *n != header::CONTENT_LENGTH)
    {
        problem.headers_mut().insert(name.clone(), value.clone());
    }
    problem
}
