//! The HTTP API: uploads, jobs, datasets, daily reports, OGC API – Features, health, metrics
//! and the OpenAPI document, behind bearer-token auth, a concurrency limit, request deadlines
//! and CORS. Every error is an RFC 9457 problem (see [`problem`]).

pub mod auth;
mod console;
mod datasets;
mod docs;
mod export;
mod features;
mod format;
mod health;
mod jobs;
pub mod observe;
pub mod problem;
mod reports;
mod sorting;
mod tiles;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use geoflow_core::report::Policy;
use geoflow_queue::Queue;
use geoflow_store::{Catalog, FeatureReads, Jobs, Loads, Store, Tiles};
use tokio::sync::Semaphore;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::storage::Storage;
pub use auth::Tokens;
use docs::ApiVersion;
use problem::Problem;

/// How the API guards itself.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer tokens for writes (and reads, when private); none configured leaves writes open.
    pub tokens: Tokens,
    /// Reads need a token too.
    pub private_reads: bool,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Longest a request other than an upload may take.
    pub request_timeout: Duration,
    /// Requests served at once; more are turned away with 503 and `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Origins allowed to call the API from a browser; `*` for any; empty for none.
    pub cors_origins: Vec<String>,
    /// The validation policy of uploads that name none.
    pub default_policy: Policy,
    /// Largest page of features served (`limit` beyond it is capped).
    pub max_items_limit: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Tokens::default(),
            private_reads: false,
            max_upload_bytes: 5 << 30,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 512,
            cors_origins: Vec::new(),
            default_policy: Policy::Skip,
            max_items_limit: 10_000,
        }
    }
}

/// What the handlers share: each role of the store they use, storage, the queue and settings.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Arc<dyn Catalog>,
    pub loads: Arc<dyn Loads>,
    pub jobs: Arc<dyn Jobs>,
    pub features: Arc<dyn FeatureReads>,
    pub tiles: Arc<dyn Tiles>,
    pub storage: Storage,
    pub queue: Arc<dyn Queue>,
    pub config: Arc<ApiConfig>,
    /// Requests that may be served at once.
    permits: Arc<Semaphore>,
    /// The datasets' extents in time, as of their current versions.
    time_extents: Arc<features::TimeExtents>,
}

impl AppState {
    /// Every role from one store.
    pub fn new(store: Arc<dyn Store>, storage: Storage, queue: Arc<dyn Queue>, config: ApiConfig) -> AppState {
        let permits = Arc::new(Semaphore::new(config.max_concurrent_requests.max(1)));
        AppState {
            catalog: store.clone(),
            loads: store.clone(),
            jobs: store.clone(),
            features: store.clone(),
            tiles: store,
            storage,
            queue,
            config: Arc::new(config),
            permits,
            time_extents: Arc::default(),
        }
    }

    /// The same state with another jobs catalog (an in-memory one, in tests).
    pub fn with_jobs(mut self, jobs: Arc<dyn Jobs>) -> AppState {
        self.jobs = jobs;
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "geoflow",
        description = "Event-driven GeoJSON ingestion: upload GeoJSON, follow its load, inspect datasets. \
                       Errors are RFC 9457 problem details.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    // Named by query parameters' `value_type`, which the paths do not collect.
    components(schemas(
        features::FormatName,
        features::ItemsFormatName,
        geoflow_core::report::Policy,
        geoflow_core::schema::SchemaPolicy,
        geoflow_core::dataset::DatasetMode,
        geoflow_store::JobStatus,
        geoflow_store::Temporal,
    )),
    tags(
        (name = "uploads", description = "GeoJSON in"),
        (name = "jobs", description = "What became of each upload and storage event"),
        (name = "datasets", description = "What is loaded"),
        (name = "reports", description = "Daily reports of what the pipeline did"),
        (name = "operations", description = "Health for load balancers and containers"),
        (name = "features", description = "OGC API – Features: the datasets as collections of GeoJSON features"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from GEOFLOW_API_TOKENS or GEOFLOW_API_TOKENS_FILE"))
                    .build(),
            ),
        );
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let reads = OpenApiRouter::new()
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::job))
        .routes(routes!(datasets::datasets))
        .routes(routes!(datasets::dataset))
        .routes(routes!(reports::list))
        .routes(routes!(reports::report))
        .routes(routes!(features::landing))
        .routes(routes!(features::conformance))
        .routes(routes!(features::collections))
        .routes(routes!(features::collection_info))
        .routes(routes!(features::schema))
        .routes(routes!(features::queryables))
        .routes(routes!(features::sortables))
        .routes(routes!(features::items))
        .routes(routes!(features::item))
        .routes(routes!(tiles::tilesets))
        .routes(routes!(tiles::tileset))
        .routes(routes!(tiles::tilejson))
        .routes(routes!(tiles::tile))
        .route_layer(from_fn_with_state(state.clone(), auth::require_read))
        .route_layer(from_fn_with_state(state.config.request_timeout, deadline));
    let writes = OpenApiRouter::new()
        .routes(routes!(uploads::upload))
        .routes(routes!(datasets::delete_source))
        .routes(routes!(datasets::change_dataset))
        .routes(routes!(datasets::drop_dataset))
        .route_layer(from_fn_with_state(state.clone(), auth::require_write));
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(reads)
        .merge(writes)
        .route_layer(from_fn_with_state(state.clone(), admit))
        .merge(health_routes())
        .split_for_parts();
    let mut document = serde_json::to_value(&openapi).unwrap_or_default();
    features::declare_items_parameters(&mut document, state.config.max_items_limit);
    let document = Arc::new(document);
    let (catalog, public) = (state.catalog.clone(), !state.config.private_reads);
    let described = move |version: ApiVersion| {
        let (document, catalog) = (document.clone(), catalog.clone());
        async move { docs::openapi_document(&document, &*catalog, public, version).await }
    };
    let api = api
        .route(
            "/openapi.json",
            get({
                let described = described.clone();
                move || described(ApiVersion::V31)
            }),
        )
        .route("/openapi-3.0.json", get(move || described(ApiVersion::V30)))
        .route("/metrics", get(observe::metrics_handler))
        .route("/docs", get(docs::page))
        .route("/docs/swagger-ui-bundle.js", get(docs::script))
        .route("/docs/swagger-ui.css", get(docs::stylesheet))
        .route("/console", get(console::page))
        .route("/console/", get(console::page))
        .route("/console/{*path}", get(console::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let cors = cors(&state.config.cors_origins);
    let api = api.with_state(state);
    let api = api.layer(axum::middleware::map_response(problem::plain_errors_as_problems));
    // Pages of features are text that compresses five- to tenfold; bodies stream through the
    // encoder. Tiles come gzipped already and are left alone.
    let api = api.layer(CompressionLayer::new());
    // Request ids, spans and HTTP metrics cover every route, CORS preflights included.
    observe::layer(match cors {
        Some(cors) => api.layer(cors),
        None => api,
    })
}

/// Liveness, readiness and metrics only: what a worker serves for its container health
/// check and for scraping.
pub fn health_router(state: AppState) -> Router {
    let (router, _) = health_routes().split_for_parts();
    observe::layer(router.route("/metrics", get(observe::metrics_handler)).fallback(not_found).with_state(state))
}

fn health_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health::healthz)).routes(routes!(health::readyz))
}

async fn not_found() -> Problem {
    Problem::not_found("no such resource")
}

async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "this resource does not accept that method")
}

/// Turns requests away while `max_concurrent_requests` are in flight: an overloaded
/// instance answers at once, and the client or the load balancer tries elsewhere.
async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match state.permits.try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "too many requests in flight; retry shortly")
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                .into_response()
        }
    }
}

/// Ends a request that takes longer than `request_timeout` (uploads, which may be long,
/// are not subject to it).
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
            .expose_headers([header::LOCATION, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Serves `app` on `listener` until `shutdown`, then lets the requests in flight finish.
/// Every connection sends without delay (`TCP_NODELAY`): otherwise Nagle's algorithm holds the
/// end of each response until the client acknowledges the previous packet, which a client
/// delaying its acknowledgements does some 40 ms later — on every page of a kept-alive
/// connection.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn slow_requests_end_at_the_deadline() {
        let app = Router::new()
            .route("/slow", get(|| tokio::time::sleep(Duration::from_secs(10))))
            .route("/fast", get(|| async { "ok" }))
            .route_layer(from_fn_with_state(Duration::from_millis(50), deadline));
        let call = |path: &str| app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap());
        let started = std::time::Instant::now();
        let slow = call("/slow").await.unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(slow.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(call("/fast").await.unwrap().status(), StatusCode::OK);
    }
}
