//! The web console at `/console`: datasets, jobs, reports, a map and an upload form, as static
//! files embedded in the binary (crates/geoflow/assets/console, and MapLibre GL JS vendored by
//! scripts/vendor-assets). Nothing is fetched from elsewhere. The files are public, whatever
//! the read policy: the console's own API calls carry the bearer token the user enters.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::problem::Problem;

/// How long a browser may keep a file without asking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caching {
    /// The console's own files: revalidated on every use (cheap, by `ETag`), so that a new
    /// binary's console is picked up at once.
    Revalidate,
    /// Vendored libraries, which change only with their pinned version: a day.
    Day,
}

impl Caching {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Caching::Revalidate => "no-cache",
            Caching::Day => "public, max-age=86400",
        })
    }
}

struct Asset {
    /// The path under `/console/`.
    path: &'static str,
    content_type: &'static str,
    caching: Caching,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr, $caching:expr) => {
        Asset { path: $path, content_type: $type, caching: $caching, body: include_bytes!($file) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Every file of the console; `index.html` is the page itself.
static ASSETS: &[Asset] = &[
    asset!("index.html", "../../assets/console/index.html", HTML, Caching::Revalidate),
    asset!("console.css", "../../assets/console/console.css", CSS, Caching::Revalidate),
    asset!("app.js", "../../assets/console/app.js", JS, Caching::Revalidate),
    asset!("api.js", "../../assets/console/api.js", JS, Caching::Revalidate),
    asset!("ui.js", "../../assets/console/ui.js", JS, Caching::Revalidate),
    asset!("charts.js", "../../assets/console/charts.js", JS, Caching::Revalidate),
    asset!("views/datasets.js", "../../assets/console/views/datasets.js", JS, Caching::Revalidate),
    asset!("views/jobs.js", "../../assets/console/views/jobs.js", JS, Caching::Revalidate),
    asset!("views/reports.js", "../../assets/console/views/reports.js", JS, Caching::Revalidate),
    asset!("views/map.js", "../../assets/console/views/map.js", JS, Caching::Revalidate),
    asset!("views/upload.js", "../../assets/console/views/upload.js", JS, Caching::Revalidate),
    asset!("favicon.svg", "../../assets/console/favicon.svg", "image/svg+xml", Caching::Revalidate),
    asset!("vendor/maplibre-gl/maplibre-gl.mjs", "../../assets/vendor/maplibre-gl/maplibre-gl.mjs", JS, Caching::Day),
    asset!(
        "vendor/maplibre-gl/maplibre-gl-worker.mjs",
        "../../assets/vendor/maplibre-gl/maplibre-gl-worker.mjs",
        JS,
        Caching::Day
    ),
    asset!("vendor/maplibre-gl/maplibre-gl.css", "../../assets/vendor/maplibre-gl/maplibre-gl.css", CSS, Caching::Day),
    asset!(
        "vendor/maplibre-gl/LICENSE.txt",
        "../../assets/vendor/maplibre-gl/LICENSE.txt",
        "text/plain; charset=utf-8",
        Caching::Day
    ),
];

/// What the page may load and run: its own origin only (MapLibre builds its worker and its
/// images from `blob:` URLs; its canvas styles are set inline).
const CSP: &str = "default-src 'self'; script-src 'self'; worker-src 'self' blob:; child-src 'self' blob:; \
                   img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Strong validators, one per asset, computed once.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    })
}

/// `GET /console` and `GET /console/`: the page.
pub async fn page(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{*path}`: the page's scripts, styles and vendored libraries. Paths without
/// a file (`/console/jobs`) answer the page, so that a reload of any console URL works.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if ASSETS.iter().any(|a| a.path == path) {
        return serve(&path, &headers);
    }
    let is_file = path.rsplit('/').next().is_some_and(|last| last.contains('.'));
    if is_file {
        return Problem::not_found(format!("the console has no file {path:?}")).into_response();
    }
    serve("index.html", &headers)
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(n) = ASSETS.iter().position(|a| a.path == path) else {
        return Problem::not_found("no such resource").into_response();
    };
    let asset = &ASSETS[n];
    let etag = &etags()[n];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag.to_str().unwrap_or_default()));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, asset.caching.header());
    h.insert(header::ETAG, etag.clone());
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if asset.content_type == HTML {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assets_have_types_caching_and_validators() {
        let page = page(HeaderMap::new()).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], HTML);
        assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(page.headers().contains_key(header::CONTENT_SECURITY_POLICY));

        let lib = asset(Path("vendor/maplibre-gl/maplibre-gl.mjs".into()), HeaderMap::new()).await;
        assert_eq!(lib.headers()[header::CONTENT_TYPE], JS);
        assert_eq!(lib.headers()[header::CACHE_CONTROL], "public, max-age=86400");

        let css = asset(Path("console.css".into()), HeaderMap::new()).await;
        assert_eq!(css.headers()[header::CONTENT_TYPE], CSS);
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, css.headers()[header::ETAG].clone());
        let unchanged = asset(Path("console.css".into()), again).await;
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);

        // A console route reloaded in the browser is the page; a missing file is a 404.
        let route = asset(Path("jobs".into()), HeaderMap::new()).await;
        assert_eq!(route.headers()[header::CONTENT_TYPE], HTML);
        let missing = asset(Path("nope.js".into()), HeaderMap::new()).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_script_the_console_imports_is_served() {
        // Each `import … from "./x.js"` and `import("./x.js")` of a served script names a served file.
        for a in ASSETS.iter().filter(|a| a.content_type == JS && !a.path.starts_with("vendor/")) {
            let text = std::str::from_utf8(a.body).unwrap();
            let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
            let specs = text.split("from \"").skip(1).chain(text.split("import(\"").skip(1));
            for spec in specs.filter_map(|s| s.split('"').next()) {
                let target = if let Some(abs) = spec.strip_prefix("/console/") {
                    abs.to_string()
                } else {
                    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                    for seg in spec.split('/') {
                        match seg {
                            "." => {}
                            ".." => {
                                parts.pop();
                            }
                            s => parts.push(s),
                        }
                    }
                    parts.join("/")
                };
                assert!(ASSETS.iter().any(|x| x.path == target), "{} imports {spec}, which is not served", a.path);
            }
        }
    }
}
