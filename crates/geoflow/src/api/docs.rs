//! `/openapi.json` and a browsable page of it at `/docs`. The page's assets are embedded in
//! the binary (see scripts/vendor-assets): nothing is fetched from elsewhere.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use geoflow_store::Catalog;

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

/// The API definition's versions.
#[derive(Debug, Clone, Copy)]
pub enum ApiVersion {
    V31,
    V30,
}

const OPENAPI_30: &str = "application/vnd.oai.openapi+json;version=3.0";

/// The API definition as served: with public reads, each collection's items path with its
/// properties as query parameters (the equality filters), which is where clients such as
/// GDAL learn which filters the server evaluates. Without the catalog, the generic paths only.
pub async fn openapi_document(
    document: &serde_json::Value,
    catalog: &dyn Catalog,
    public: bool,
    version: ApiVersion,
) -> Response {
    let mut document = document.clone();
    if public {
        match catalog.datasets().await {
            Ok(datasets) => super::features::declare_collection_items(&mut document, &datasets),
            Err(e) => tracing::warn!(error = %e, "the API definition is served without its collections' paths"),
        }
    }
    match version {
        ApiVersion::V31 => ([(header::CONTENT_TYPE, "application/json")], document.to_string()).into_response(),
        ApiVersion::V30 => ([(header::CONTENT_TYPE, OPENAPI_30)], openapi_30(&document).to_string()).into_response(),
    }
}

/// The OpenAPI 3.1 document as OpenAPI 3.0, for clients and conformance classes that know
/// only 3.0 (OGC API – Features' `oas30`): `null` types become `nullable`, `examples` an
/// `example`, `const` a one-value `enum`; what 3.0 cannot say is left out.
pub fn openapi_30(doc: &serde_json::Value) -> serde_json::Value {
    let mut doc = doc.clone();
    down(&mut doc);
    doc["openapi"] = "3.0.3".into();
    if let Some(license) = doc.pointer_mut("/info/license").and_then(|l| l.as_object_mut()) {
        license.remove("identifier");
    }
    doc
}

fn down(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Array(items) => items.iter_mut().for_each(down),
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get("type").cloned() {
                let rest: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
                if rest.len() < types.len() {
                    map.insert("nullable".into(), true.into());
                }
                match rest.as_slice() {
                    [one] => {
                        map.insert("type".into(), one.clone());
                    }
                    _ => {
                        map.remove("type");
                    }
                }
            }
            for key in ["oneOf", "anyOf"] {
                if let Some(Value::Array(options)) = map.get_mut(key) {
                    let before = options.len();
                    options.retain(|o| o.get("type").and_then(|t| t.as_str()) != Some("null"));
                    if options.len() < before {
                        map.insert("nullable".into(), true.into());
                    }
                }
            }
            if let Some(Value::Array(examples)) = map.get("examples").cloned() {
                // In a schema, 3.1's `examples` is an array; in a media type or parameter it is
                // a map, the same in 3.0.
                map.remove("examples");
                if let Some(first) = examples.into_iter().next() {
                    map.insert("example".into(), first);
                }
            }
            if let Some(constant) = map.remove("const") {
                map.insert("enum".into(), Value::Array(vec![constant]));
            }
            map.remove("contentMediaType");
            // JSON Schema 2019-09 and later only.
            map.remove("propertyNames");
            map.values_mut().for_each(down);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openapi_31_reads_as_30() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": { "title": "t", "version": "1", "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" } },
            "components": { "schemas": { "Job": { "type": "object", "properties": {
                "error": { "type": ["string", "null"] },
                "result": { "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/R" }] },
                "kind": { "const": "job", "examples": ["job"] },
            } } } }
        });
        let down = openapi_30(&doc);
        assert_eq!(down["openapi"], "3.0.3");
        assert!(down["info"]["license"].get("identifier").is_none());
        let p = &down["components"]["schemas"]["Job"]["properties"];
        assert_eq!(p["error"], json!({ "type": "string", "nullable": true }));
        assert_eq!(p["result"], json!({ "oneOf": [{ "$ref": "#/components/schemas/R" }], "nullable": true }));
        assert_eq!(p["kind"], json!({ "enum": ["job"], "example": "job" }));
        assert!(!down.to_string().contains("\"null\""));
    }
}
