//! Per-request observability: an `x-request-id` on every response, a span per request (so that
//! every log line of a request carries its id), a closing log line with status and latency, and
//! the HTTP metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tracing::Instrument;

use crate::metrics;

/// The request id header, in and out.
const REQUEST_ID: &str = "x-request-id";

/// Longest incoming request id that is kept; it is logged and echoed, so it stays short.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The route label of requests that matched no route: raw paths would make a series per path.
const UNMATCHED: &str = "unmatched";

/// Observes every route and the fallback of `router`. Call it last, after the final `route` and
/// `fallback`: axum applies a layer only to the routes that exist when it is added.
pub fn layer<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // `Router::layer` wraps what is already there: innermost first. Running after routing is
    // what gives `observe` the matched route.
    router
        .layer(middleware::from_fn(observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::map_request(drop_unusable_request_id))
}

/// `GET /metrics`: the Prometheus text exposition format.
pub async fn metrics_handler() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics::render())
}

/// Drops an incoming request id that is not one short token, so that a fresh one replaces it:
/// ids end up in logs and response headers.
async fn drop_unusable_request_id(mut req: Request) -> Request {
    let mut ids = req.headers().get_all(REQUEST_ID).iter();
    let usable = match (ids.next(), ids.next()) {
        (Some(id), None) => is_token(id.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !usable {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

fn is_token(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// The span, the closing log line and the metrics of one request. Latency runs to the response
/// head; a streamed body may take longer.
async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = metrics::method_label(req.method().as_str());
    let route = req.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_string();
    let request_id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("");
    let span = tracing::info_span!("request", request_id, method, route = %route);
    let response = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, latency_ms = took.as_secs_f64() * 1e3, "request finished"));
    metrics::http_request(method, route, status, took);
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        layer(Router::new().route("/observe-test/{id}", get(|| async { "ok" })).route("/metrics", get(metrics_handler)))
    }

    async fn get_with(uri: &str, request_id: Option<&str>) -> Response {
        let mut req = Request::get(uri);
        if let Some(id) = request_id {
            req = req.header(REQUEST_ID, id);
        }
        app().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn request_id(res: &Response) -> &str {
        res.headers().get(REQUEST_ID).expect("x-request-id").to_str().unwrap()
    }

    #[tokio::test]
    async fn responses_carry_a_fresh_request_id() {
        let res = get_with("/observe-test/1", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(request_id(&res).len(), 36, "a UUID");
        let unmatched = get_with("/observe-test-nowhere", None).await;
        assert_eq!(unmatched.status(), StatusCode::NOT_FOUND);
        assert_eq!(request_id(&unmatched).len(), 36, "the fallback is observed too");
    }

    #[tokio::test]
    async fn a_sane_incoming_id_is_echoed() {
        let res = get_with("/observe-test/1", Some("edge-7f3a.01:b_2")).await;
        assert_eq!(request_id(&res), "edge-7f3a.01:b_2");
    }

    #[tokio::test]
    async fn an_unusable_incoming_id_is_replaced() {
        for bad in ["has space", "quote\"d", "", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            let res = get_with("/observe-test/1", Some(bad)).await;
            assert_ne!(request_id(&res), bad);
            assert_eq!(request_id(&res).len(), 36, "{bad:?} replaced by a UUID");
        }
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_pattern() {
        metrics::install();
        get_with("/observe-test/42", None).await;
        get_with("/observe-test-nowhere/42", None).await;
        let res = get_with("/metrics", None).await;
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/plain; version=0.0.4");
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains(r#"geoflow_http_requests_total{method="GET",route="/observe-test/{id}",status="200"}"#),
            "{text}"
        );
        assert!(text.contains(r#"geoflow_http_requests_total{method="GET",route="unmatched",status="404"}"#), "{text}");
        assert!(
            text.contains(r#"geoflow_http_request_duration_seconds_bucket{method="GET",route="/observe-test/{id}""#),
            "{text}"
        );
        assert!(!text.contains("/observe-test/42"), "raw paths never become labels");
    }
}
