//! `/openapi.json` and a browsable page of it at `/docs`. The page's assets are embedded in
//! the binary (see scripts/vendor-assets): nothing is fetched from elsewhere.

use axum::http::header;
use axum::response::{Html, IntoResponse};

const SWAGGER_UI_JS: &[u8] = include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &[u8] = include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui.css");

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>geoflow API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="api"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#api", deepLinking: true });
</script>
</body>
</html>
"##;

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// Assets change only with the binary: let browsers keep them for a day.
const CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "public, max-age=86400");

pub async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), CACHE], SWAGGER_UI_JS)
}

pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), CACHE], SWAGGER_UI_CSS)
}
