//! OGC API – Features, Part 1 (Core, GeoJSON, HTML, OpenAPI 3.0): every dataset served back
//! as a collection that QGIS, GDAL, OWSLib, Leaflet or MapLibre read directly.
//!
//! Pages are keyed by `fid` (the `cursor` of a `next` link) or, in a `sortby` order, by a
//! feature's sort values and `fid` (see [`super::sorting`]), so a page deep in a large table
//! costs what the first one does; `numberMatched` comes from the catalog's stored counts and is
//! left out when filters make it unknown, rather than paid for with a count over the table.
//! Feature pages stream: the response is written as the store reads rows. Every response
//! carries an `ETag` derived from the dataset's load version, so any load makes caches
//! revalidate, and `If-None-Match` answers `304` without reading a row.

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use geoflow_core::dataset::DatasetName;
use geoflow_core::row::Bbox;
use geoflow_core::schema::FieldType;
use geoflow_store::filter::GEOMETRY_PROPERTY;
use geoflow_store::{
    DatasetInfo, FeatureQuery, Filter, FilterLang, SortKey, SortValue, StoreError, StoredFeature, TemporalFilter,
    TimeExtent,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::crs::{CrsChoiceError, CrsList};
use super::export::{self, Csv, Sequence};
use super::format::{Format, DOCUMENT_FORMATS, ITEMS_FORMATS};
use super::problem::{Problem, ProblemBody};
use super::sorting::{self, decode_cursor, encode_cursor, parse_sortby, sortables_schema};
use super::AppState;
use geoflow_core::served_crs::{ServedCrs, CRS84_URI};

/// Longitude/latitude on WGS84: the CRS features are stored in, and served in by default
/// (RFC 7946).
const CRS84: &str = CRS84_URI;

const CONFORMANCE: [&str; 28] = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    // Each collection lists its queryables, and each filters by equality as a query parameter.
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    // `filter` in CQL2 text or JSON: comparisons, LIKE / BETWEEN / IN, every spatial function
    // with any geometry literal (see geoflow_store::filter for what else it takes).
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    // CASEI and ACCENTI round text properties and literals, in comparisons, IN and LIKE.
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    // Every temporal function, on instants and on intervals whose ends are properties.
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    // `sortby` on items, and each collection's sortables (Part 8).
    sorting::SORTING,
    // Features in any CRS of the collections' list (`crs`), boxes too (`bbox-crs`).
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    // OGC API – Tiles: each collection's vector tilesets (see `tiles`), in the API definition.
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
    "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
    // The definitions of the tile matrix sets at /tileMatrixSets, in JSON.
    "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
];

const GEOJSON: &str = "application/geo+json";

/// Default page size, as the standard suggests.
const DEFAULT_LIMIT: usize = 10;
/// The deepest page `offset` reaches: the features before it are read and passed over, where
/// the `next` links' cursors start each page where the last one ended.
const MAX_OFFSET: usize = 1_000_000;

/// The absolute URL of this service as the client reached it (a load balancer in front sets
/// `X-Forwarded-Proto`).
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or("http");
    let scheme = if scheme == "https" { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub(super) fn link(href: String, rel: &str, kind: &str, title: &str) -> Value {
    json!({ "href": href, "rel": rel, "type": kind, "title": title })
}

/// A response with its validator; `304` when the client already holds this representation.
pub(super) fn validated(
    headers: &HeaderMap,
    etag: String,
    last_modified: Option<&str>,
    response: Response,
) -> Response {
    let tag = format!("\"{etag}\"");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*"));
    let mut response = if matches { StatusCode::NOT_MODIFIED.into_response() } else { response };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = last_modified.and_then(http_date).and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    // Caches may keep a copy but must ask again each time; the ETag makes asking cheap.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept, authorization"));
    response
}

/// An RFC 3339 timestamp as an HTTP date.
pub(super) fn http_date(rfc3339: &str) -> Option<String> {
    let t = OffsetDateTime::parse(rfc3339, &Rfc3339).ok()?.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).ok()
}

/// What a dataset's validators derive from: its version, and when it last changed. The version
/// alone repeats when a dropped dataset is created anew (it starts again at 0), the time does not.
pub(super) fn state_of(d: &DatasetInfo) -> String {
    format!("{}@{}", d.version, d.updated_at)
}

/// A short hex digest of the parts, for ETags.
pub(super) fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..12].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn json_response(content_type: &'static str, value: &Value) -> Response {
    ([(header::CONTENT_TYPE, content_type)], value.to_string()).into_response()
}

async fn datasets(state: &AppState) -> Result<Vec<DatasetInfo>, Problem> {
    state.catalog.datasets().await.map_err(|e| Problem::store("database", e))
}

pub(super) async fn dataset(state: &AppState, id: &str) -> Result<DatasetInfo, Problem> {
    let unknown = || Problem::not_found(format!("no collection {id:?}"));
    let name = DatasetName::new(id).map_err(|_| unknown())?;
    let found = state.catalog.dataset(&name).await.map_err(|e| Problem::store("database", e))?;
    found.ok_or_else(unknown)
}

const SCHEMA_JSON: &str = "application/schema+json";

/// The JSON Schema of a collection's features: every property with its type, so that
/// clients which fix a layer's fields up front (GDAL, QGIS) type them right even when the
/// first features leave a property null.
fn feature_schema(base: &str, d: &DatasetInfo) -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{base}/collections/{}/schema", d.name.as_str()),
        "title": d.name.as_str(),
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": { "type": "string", "enum": ["Feature"] },
            "id": { "type": "integer", "format": "int64" },
            "geometry": { "x-ogc-role": "primary-geometry", "format": geometry_format(&d.geometry_type) },
            "properties": { "type": "object", "properties": property_schemas(d) },
        },
    })
}

/// The JSON Schema of each property of a collection that has one type.
pub(super) fn property_schemas(d: &DatasetInfo) -> serde_json::Map<String, Value> {
    d.columns
        .iter()
        .filter_map(|c| {
            let schema = match c.ty {
                FieldType::Boolean => json!({ "type": "boolean" }),
                // 64-bit, as stored: clients that read `format` keep the width.
                FieldType::Integer | FieldType::WideInteger => json!({ "type": "integer", "format": "int64" }),
                FieldType::Real => json!({ "type": "number" }),
                FieldType::Date => json!({ "type": "string", "format": "date" }),
                FieldType::DateTime => json!({ "type": "string", "format": "date-time" }),
                FieldType::Text => json!({ "type": "string" }),
                // Nested values, numbers kept as exact text and values of mixed types have no
                // one type: clients infer what they can from the values.
                FieldType::Json | FieldType::Null => return None,
            };
            Some((c.key.clone(), schema))
        })
        .collect()
}

/// The queryables of a collection (OGC API – Features Part 3): the properties it can be
/// filtered on, each an equality filter of `items` and a property of its `filter`, and the
/// feature geometry that the filter's spatial functions take.
fn queryables_schema(base: &str, d: &DatasetInfo) -> Value {
    let mut properties = property_schemas(d);
    properties
        .entry(GEOMETRY_PROPERTY)
        .or_insert_with(|| json!({ "x-ogc-role": "primary-geometry", "format": geometry_format(&d.geometry_type) }));
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{base}/collections/{}/queryables", d.name.as_str()),
        "title": d.name.as_str(),
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    })
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/sortables",
    tag = "features",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The properties the collection's features can be sorted by (sortby), as a JSON Schema", body = Object, content_type = "application/schema+json"),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn sortables(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    schema_of(&state, &id, &headers, "sortables", sortables_schema).await
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/queryables",
    tag = "features",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The properties the collection's features can be filtered on, as a JSON Schema", body = Object, content_type = "application/schema+json"),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn queryables(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    schema_of(&state, &id, &headers, "queryables", queryables_schema).await
}

/// A JSON Schema that `build` derives from a collection, with the collection's validators.
async fn schema_of(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    what: &str,
    build: fn(&str, &DatasetInfo) -> Value,
) -> Result<Response, Problem> {
    let d = dataset(state, id).await?;
    let base = base_url(headers);
    let etag = digest(&[d.name.as_str(), &state_of(&d), what, &base]);
    let response = json_response(SCHEMA_JSON, &build(&base, &d));
    Ok(validated(headers, etag, Some(&d.updated_at), response))
}

/// The OGC API – Features schema format of a geometry column's type (`MultiPolygon` →
/// `geometry-multipolygon`; a generic column, of any kind, is `geometry-any`).
fn geometry_format(geometry_type: &str) -> String {
    let kind = geometry_type.split(' ').next().unwrap_or_default();
    let kind = kind.strip_suffix('Z').unwrap_or(kind).to_ascii_lowercase();
    match kind.as_str() {
        "point" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" => format!("geometry-{kind}"),
        _ => "geometry-any".into(),
    }
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/schema",
    tag = "features",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The JSON Schema of the collection's features", body = Object, content_type = "application/schema+json"),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn schema(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    schema_of(&state, &id, &headers, "schema", feature_schema).await
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// `json` or `html` (default: from the Accept header).
    #[param(value_type = Option<FormatName>)]
    f: Option<String>,
}

#[utoipa::path(
    get,
    path = "/",
    tag = "features",
    params(FormatParam),
    responses(
        (status = 200, description = "Landing page: links to the API definition, the conformance declaration and the collections (HTML with f=html or a browser's Accept)", content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn landing(headers: HeaderMap, Query(p): Query<FormatParam>) -> Result<Response, Problem> {
    let format = Format::negotiate(p.f.as_deref(), &headers, DOCUMENT_FORMATS)?;
    let base = base_url(&headers);
    let body = json!({
        "title": "geoflow",
        "description": "Datasets loaded by geoflow, as OGC API – Features collections and vector tiles",
        "links": [
            link(format!("{base}/?f=json"), "self", "application/json", "This document"),
            link(format!("{base}/?f=html"), "alternate", "text/html", "This document as HTML"),
            link(format!("{base}/openapi-3.0.json"), "service-desc", "application/vnd.oai.openapi+json;version=3.0", "The API definition (OpenAPI 3.0)"),
            link(format!("{base}/openapi.json"), "service-desc", "application/json", "The API definition (OpenAPI 3.1)"),
            link(format!("{base}/docs"), "service-doc", "text/html", "The API documentation"),
            link(format!("{base}/conformance"), "conformance", "application/json", "Conformance classes"),
            link(format!("{base}/collections"), "data", "application/json", "The collections"),
            link(
                format!("{base}/tileMatrixSets"),
                "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes",
                "application/json",
                "The tile matrix sets of the vector tiles",
            ),
        ],
    });
    Ok(match format {
        Format::Json | Format::Csv | Format::GeoJsonSeq => json_response("application/json", &body),
        Format::Html => Html(html_page("geoflow", &html_links(&body))).into_response(),
    })
}

#[utoipa::path(
    get,
    path = "/conformance",
    tag = "features",
    params(FormatParam),
    responses(
        (status = 200, description = "The conformance classes implemented", content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
pub async fn conformance(headers: HeaderMap, Query(p): Query<FormatParam>) -> Result<Response, Problem> {
    let body = json!({ "conformsTo": CONFORMANCE });
    Ok(match Format::negotiate(p.f.as_deref(), &headers, DOCUMENT_FORMATS)? {
        Format::Json | Format::Csv | Format::GeoJsonSeq => json_response("application/json", &body),
        Format::Html => {
            let items: String = CONFORMANCE.iter().map(|c| format!("<li>{}</li>", escape(c))).collect();
            Html(html_page("Conformance", &format!("<ul>{items}</ul>"))).into_response()
        }
    })
}

/// The time reference system of temporal extents (the Gregorian calendar, ISO 8601).
const GREGORIAN: &str = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian";

/// Each dataset's extent in time, computed once per version of the dataset (a scan of its
/// table) rather than on every listing.
#[derive(Default)]
pub(super) struct TimeExtents(std::sync::Mutex<std::collections::HashMap<String, (String, TimeExtent)>>);

impl TimeExtents {
    /// `d`'s extent in time; `None` when the store cannot say (logged: a listing does not fail
    /// for it).
    async fn of(&self, state: &AppState, d: &DatasetInfo) -> Option<TimeExtent> {
        let version = format!("{}:{:?}", state_of(d), d.temporal);
        let cached = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(d.name.as_str()).cloned();
        if let Some((_, extent)) = cached.filter(|(v, _)| *v == version) {
            return Some(extent);
        }
        match state.features.time_extent(&d.name, d.temporal.as_ref()).await {
            Ok(extent) => {
                let mut cache = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                cache.insert(d.name.as_str().to_string(), (version, extent.clone()));
                Some(extent)
            }
            Err(e) => {
                tracing::warn!(dataset = %d.name, error = %e, "cannot read the dataset's extent in time");
                None
            }
        }
    }
}

/// The temporal extent of a collection, and which properties `datetime` filters on.
fn temporal_extent(d: &DatasetInfo, (first, last): &TimeExtent) -> Value {
    let on = match &d.temporal {
        Some(t) => json!(t),
        None => json!("load time"),
    };
    json!({ "interval": [[first, last]], "trs": GREGORIAN, "x-geoflow-datetime": on })
}

/// A collection's description; `crs` its list of CRSs (or `["#/crs"]`, the list of the
/// `/collections` document it is part of).
fn collection(base: &str, d: &DatasetInfo, crs: Value, time: Option<&TimeExtent>) -> Value {
    let id = d.name.as_str();
    let mut c = json!({
        "id": id,
        "title": id,
        "description": format!("{} features from {} source(s)", d.feature_count, d.sources),
        "itemType": "feature",
        "crs": crs,
        "storageCrs": CRS84,
        "links": [
            link(format!("{base}/collections/{id}"), "self", "application/json", "This collection"),
            link(format!("{base}/collections/{id}?f=html"), "alternate", "text/html", "This collection as HTML"),
            link(format!("{base}/collections/{id}/items"), "items", GEOJSON, "The features"),
            link(format!("{base}/collections/{id}/items?f=html"), "items", "text/html", "The features as HTML"),
            link(format!("{base}/collections/{id}/schema"), "describedby", SCHEMA_JSON, "The schema of the features"),
            // The same, under the relation name GDAL's OAPIF driver looks for.
            link(format!("{base}/collections/{id}/schema"), "describedBy", SCHEMA_JSON, "The schema of the features"),
            link(
                format!("{base}/collections/{id}/queryables"),
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                SCHEMA_JSON,
                "The properties the features can be filtered on",
            ),
            link(
                format!("{base}/collections/{id}/sortables"),
                sorting::SORTABLES_REL,
                SCHEMA_JSON,
                "The properties the features can be sorted by",
            ),
            link(
                format!("{base}/collections/{id}/tiles"),
                "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                "application/json",
                "The vector tilesets of the collection",
            ),
        ],
    });
    if let Some(b) = d.bbox {
        c["extent"] = json!({ "spatial": { "bbox": [[b.min_x, b.min_y, b.max_x, b.max_y]], "crs": CRS84 } });
    }
    if let Some(time) = time {
        c["extent"]["temporal"] = temporal_extent(d, time);
    }
    c
}

#[utoipa::path(
    get,
    path = "/collections",
    tag = "features",
    params(FormatParam),
    responses(
        (status = 200, description = "Every dataset as a collection", content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn collections(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<FormatParam>,
) -> Result<Response, Problem> {
    let format = Format::negotiate(p.f.as_deref(), &headers, DOCUMENT_FORMATS)?;
    let base = base_url(&headers);
    let all = datasets(&state).await?;
    let versions: Vec<String> = all.iter().map(|d| format!("{}:{}", d.name.as_str(), state_of(d))).collect();
    let mut parts: Vec<&str> = versions.iter().map(String::as_str).collect();
    parts.extend([format.name(), base.as_str()]);
    let etag = digest(&parts);
    let latest = all.iter().map(|d| d.updated_at.as_str()).max();
    // Every collection serves the same CRSs: listed once, each collection referring to it
    // (OGC API – Features Part 2).
    let mut collections = Vec::with_capacity(all.len());
    for d in &all {
        let time = state.time_extents.of(&state, d).await;
        collections.push(collection(&base, d, json!(["#/crs"]), time.as_ref()));
    }
    let body = json!({
        "links": [
            link(format!("{base}/collections"), "self", "application/json", "The collections"),
            link(format!("{base}/collections?f=html"), "alternate", "text/html", "The collections as HTML"),
        ],
        "crs": state.crs.uris(),
        "collections": collections,
    });
    let response = match format {
        Format::Json | Format::Csv | Format::GeoJsonSeq => json_response("application/json", &body),
        Format::Html => {
            let rows: String = all
                .iter()
                .map(|d| {
                    let id = escape(d.name.as_str());
                    format!(
                        "<tr><td><a href=\"/collections/{id}?f=html\">{id}</a></td><td>{}</td><td>{}</td></tr>",
                        d.feature_count,
                        d.bbox.map_or(String::new(), |b| format!("{} {} {} {}", b.min_x, b.min_y, b.max_x, b.max_y))
                    )
                })
                .collect();
            let table = format!("<table><tr><th>collection</th><th>features</th><th>extent</th></tr>{rows}</table>");
            Html(html_page("Collections", &table)).into_response()
        }
    };
    Ok(validated(&headers, etag, latest, response))
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}",
    tag = "features",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"), FormatParam),
    responses(
        (status = 200, description = "The collection: extent, CRS, links", content((Object = "application/json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn collection_info(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(p): Query<FormatParam>,
) -> Result<Response, Problem> {
    let format = Format::negotiate(p.f.as_deref(), &headers, DOCUMENT_FORMATS)?;
    let d = dataset(&state, &id).await?;
    let base = base_url(&headers);
    let time = state.time_extents.of(&state, &d).await;
    let body = collection(&base, &d, json!(state.crs.uris()), time.as_ref());
    let etag = digest(&[d.name.as_str(), &state_of(&d), format.name(), &base]);
    let response = match format {
        Format::Json | Format::Csv | Format::GeoJsonSeq => json_response("application/json", &body),
        Format::Html => {
            let columns: String =
                d.columns.iter().map(|c| format!("<tr><td>{}</td><td>{:?}</td></tr>", escape(&c.key), c.ty)).collect();
            let html = format!(
                "<p>{} features. <a href=\"/collections/{id}/items?f=html\">Browse the features</a></p>\
                 <table><tr><th>property</th><th>type</th></tr>{columns}</table>",
                d.feature_count,
                id = escape(d.name.as_str())
            );
            Html(html_page(d.name.as_str(), &html)).into_response()
        }
    };
    Ok(validated(&headers, etag, Some(&d.updated_at), response))
}

/// The query of an items request, checked against the collection.
struct ItemsRequest {
    query: FeatureQuery,
    /// Features to pass over before the page starts (`offset`).
    offset: usize,
    format: Format,
    /// Filters other than the cursor: `numberMatched` is known only without them.
    filtered: bool,
    /// The parameters to repeat in `next` links (everything but the cursor).
    carried: Vec<(String, String)>,
    /// The cursor as given: `cursor` or `before`, and its value.
    position: Option<(&'static str, String)>,
    /// The CRS of the geometries (`crs`).
    crs: ServedCrs,
}

fn items_request(
    params: Vec<(String, String)>,
    headers: &HeaderMap,
    d: &DatasetInfo,
    max_limit: usize,
    served: &CrsList,
) -> Result<ItemsRequest, Problem> {
    let bad = |detail: String| Problem::bad_request("invalid-parameter", detail);
    let mut query = FeatureQuery { limit: DEFAULT_LIMIT, ..FeatureQuery::default() };
    let mut crs = ServedCrs::crs84();
    // The box is read once its CRS is known, whichever parameter comes first.
    let (mut bbox, mut bbox_crs) = (None, ServedCrs::crs84());
    let mut f = None;
    let mut offset = 0;
    let mut carried = Vec::new();
    let mut filter = None;
    let mut lang = FilterLang::Text;
    let mut filter_crs = ServedCrs::crs84();
    // Read once the order is known, whatever the parameters' order.
    let (mut cursor, mut before) = (None, None);
    for (key, value) in params {
        match key.as_str() {
            "f" => f = Some(value.clone()),
            "filter" => filter = Some(value.clone()),
            "filter-lang" => {
                lang = FilterLang::from_name(&value).ok_or_else(|| {
                    bad(format!("filter-lang={value:?}: expected one of {}", FilterLang::NAMES.join(", ")))
                })?
            }
            "filter-crs" => filter_crs = choose_crs(served, "filter-crs", &value)?,
            "offset" => {
                offset = value.parse().map_err(|_| bad(format!("offset={value:?}: expected an integer from 0")))?;
                if offset > MAX_OFFSET {
                    return Err(bad(format!(
                        "offset={value:?}: at most {MAX_OFFSET}; follow the next links to read further, each as fast \
                         as the first page"
                    )));
                }
            }
            "limit" => {
                let n: usize =
                    value.parse().map_err(|_| bad(format!("limit={value:?}: expected a positive integer")))?;
                if n == 0 {
                    return Err(bad("limit must be at least 1".into()));
                }
                query.limit = n.min(max_limit);
            }
            "bbox" => bbox = Some(value.clone()),
            "bbox-crs" => bbox_crs = choose_crs(served, "bbox-crs", &value)?,
            "crs" => crs = choose_crs(served, "crs", &value)?,
            "properties" => {
                let keys: Vec<String> =
                    value.split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect();
                if let Some(unknown) = keys.iter().find(|k| !d.columns.iter().any(|c| &c.key == *k)) {
                    return Err(bad(format!("properties: {} has no property {unknown:?}", d.name.as_str())));
                }
                query.fields = Some(keys);
            }
            "skipGeometry" => {
                query.skip_geometry = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("skipGeometry={value:?}: expected true or false"))),
                }
            }
            "datetime" => {
                let interval = parse_interval(&value).map_err(|e| bad(format!("datetime={value:?}: {e}")))?;
                // The dataset's declared time, else the load time.
                match (&d.temporal, interval) {
                    (Some(properties), Some((from, to))) => {
                        query.temporal = Some(TemporalFilter { properties: properties.clone(), from, to })
                    }
                    (None, interval) => query.loaded = interval,
                    (Some(_), None) => {}
                }
            }
            "sortby" => query.sort = parse_sortby(&value, d).map_err(|e| bad(e.to_string()))?,
            "cursor" => {
                cursor = Some(value);
                continue;
            }
            "before" => {
                before = Some(value);
                continue;
            }
            other if d.columns.iter().any(|c| c.key == other) => {
                // No stored text holds a NUL (PostgreSQL refuses one): nothing can match it,
                // and the database must not be the one to say so.
                if value.contains('\0') {
                    return Err(bad(format!("{other}: a NUL character matches no stored value")));
                }
                query.properties.push((key.clone(), value.clone()));
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?}: expected {} or a property of {}",
                    ITEMS_PARAMETERS.join(", "),
                    d.name.as_str()
                )))
            }
        }
        carried.push((key, value));
    }
    if cursor.is_some() && before.is_some() {
        return Err(bad("cursor and before cannot be combined".into()));
    }
    let position = match (cursor, before) {
        (Some(token), _) => {
            (query.after, query.position) = read_cursor("cursor", &token, &query.sort, d).map_err(bad)?;
            Some(("cursor", token))
        }
        (_, Some(token)) => {
            (query.before, query.position) = read_cursor("before", &token, &query.sort, d).map_err(bad)?;
            Some(("before", token))
        }
        (None, None) => None,
    };
    if query.before.is_some() && offset > 0 {
        return Err(bad("offset and before cannot be combined".into()));
    }
    if let Some(text) = bbox {
        query.bbox = Some(parse_bbox(&text, &bbox_crs).map_err(|e| bad(format!("bbox={text:?}: {e}")))?);
    }
    query.crs = Some(crs.clone()).filter(|c| !c.is_stored_crs());
    let format = Format::negotiate(f.as_deref(), headers, ITEMS_FORMATS)?;
    if let Some(text) = filter {
        let type_of = |key: &str| d.columns.iter().find(|c| c.key == key).map(|c| c.ty);
        query.filter =
            Some(Filter::parse(&text, lang, &filter_crs, &type_of).map_err(|e| bad(format!("filter: {e}")))?);
    }
    let filtered = query.bbox.is_some()
        || query.loaded.is_some()
        || query.temporal.is_some()
        || !query.properties.is_empty()
        || query.filter.is_some();
    Ok(ItemsRequest { query, offset, format, filtered, carried, position, crs })
}

/// The fid (and, in a sorted order, the sort values) of the feature a cursor names: a fid in
/// `fid` order, a token of [`sorting`] otherwise.
fn read_cursor(
    param: &'static str,
    token: &str,
    sort: &[SortKey],
    d: &DatasetInfo,
) -> Result<(Option<i64>, Vec<SortValue>), String> {
    if sort.is_empty() {
        let fid = token.parse::<i64>().map_err(|_| format!("{param}={token:?} is not a cursor of ours"))?;
        return Ok((Some(fid), Vec::new()));
    }
    let (fid, values) = decode_cursor(param, token, sort, d).map_err(|e| e.to_string())?;
    Ok((Some(fid), values))
}

/// The cursor of a page after (or before) `feature`.
fn cursor_of(sort: &[SortKey], feature: &(i64, Vec<SortValue>)) -> String {
    if sort.is_empty() {
        feature.0.to_string()
    } else {
        encode_cursor(sort, &feature.1, feature.0)
    }
}

/// The served CRS that parameter `name` names.
fn choose_crs(served: &CrsList, name: &str, value: &str) -> Result<ServedCrs, Problem> {
    served.choose(value).map_err(|e| {
        let status = match e {
            CrsChoiceError::NotAUri | CrsChoiceError::NotListed => StatusCode::BAD_REQUEST,
            // Listed CRSs were checked when the API started.
            CrsChoiceError::Unusable(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Problem::new(status, "invalid-parameter", format!("{name}={value:?}: {e}"))
    })
}

/// A `bbox` given in `crs` (its axis order), as the longitude/latitude box that covers it.
fn parse_bbox(text: &str, crs: &ServedCrs) -> Result<Bbox, String> {
    let numbers: Vec<f64> = text
        .split(',')
        .map(|n| n.trim().parse::<f64>().map_err(|_| format!("{n:?} is not a number")))
        .collect::<Result<_, _>>()?;
    let corners = match numbers[..] {
        [a, b, c, d] => [a, b, c, d],
        // Heights are ignored: the features are two-dimensional.
        [a, b, _, d, e, _] => [a, b, d, e],
        _ => return Err("expected 4 (or 6) comma-separated numbers".into()),
    };
    if numbers.iter().any(|n| !n.is_finite()) {
        return Err("numbers must be finite".into());
    }
    let lon_lat = crs.bbox_to_wgs84(corners).map_err(|e| format!("in {}: {e}", crs.uri()))?;
    if crs.projects() {
        // Covering a projected box, whatever its size: every position is within range.
        return Ok(lon_lat);
    }
    check_lon_lat(lon_lat)
}

/// A box in longitude/latitude, checked for range (`min_lon > max_lon` crosses the
/// antimeridian).
fn check_lon_lat(b: Bbox) -> Result<Bbox, String> {
    let Bbox { min_x, min_y, max_x, max_y } = b;
    if !(-90.0..=90.0).contains(&min_y) || !(-90.0..=90.0).contains(&max_y) || min_y > max_y {
        return Err("latitudes must lie within -90..90, the lower first".into());
    }
    if !(-180.0..=180.0).contains(&min_x) || !(-180.0..=180.0).contains(&max_x) {
        return Err("longitudes must lie within -180..180".into());
    }
    Ok(Bbox { min_x, min_y, max_x, max_y })
}

type Interval = (Option<OffsetDateTime>, Option<OffsetDateTime>);

/// An RFC 3339 instant or date, or an interval `start/end` with `..` (or nothing) for an
/// open end. A date alone stands for its whole (UTC) day.
fn parse_interval(text: &str) -> Result<Option<Interval>, String> {
    let bound = |s: &str, end: bool| -> Result<Option<OffsetDateTime>, String> {
        if s.is_empty() || s == ".." {
            return Ok(None);
        }
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(Some(t));
        }
        let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| format!("{s:?} is neither an RFC 3339 date-time nor a date"))?;
        let day = date.midnight().assume_utc();
        Ok(Some(if end { day + time::Duration::days(1) - time::Duration::nanoseconds(1) } else { day }))
    };
    let (start, end) = match text.split_once('/') {
        Some((a, b)) => (bound(a, false)?, bound(b, true)?),
        None => (bound(text, false)?, bound(text, true)?),
    };
    if let (Some(a), Some(b)) = (start, end) {
        if a > b {
            return Err("the interval ends before it starts".into());
        }
    }
    Ok((start.is_some() || end.is_some()).then_some((start, end)))
}

fn url_with(base: &str, path: &str, params: &[(String, String)]) -> String {
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{}", query.join("&"))
    }
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ItemsParams {
    /// Page size: 1 to the server's maximum (default 10; larger values are capped).
    #[param(minimum = 1, default = 10)]
    limit: Option<usize>,
    /// Features to pass over before the page starts (default 0). The `next` links start each
    /// page where the last ended, which stays as fast however deep the page.
    #[param(minimum = 0, maximum = 1_000_000, default = 0)]
    offset: Option<usize>,
    /// Only features intersecting `min_lon,min_lat,max_lon,max_lat` (CRS84; `min_lon > max_lon`
    /// crosses the antimeridian), or the box in `bbox-crs`, lower corner first in that CRS's
    /// axis order.
    #[param(value_type = Option<Vec<f64>>, min_items = 4, max_items = 6, style = Form)]
    bbox: Option<String>,
    /// The CRS of `bbox`, by URI: one of the collection's `crs` list (default: CRS84). The box
    /// is transformed to longitude/latitude with its edges densified, so that the box searched
    /// covers the one given.
    #[param(rename = "bbox-crs")]
    bbox_crs: Option<String>,
    /// The CRS of the geometries, by URI: one of the collection's `crs` list (default: CRS84,
    /// longitude/latitude). Coordinates come in the axis order of the CRS's authority
    /// (latitude first for EPSG:4326), in metres to 0.1 mm for projected CRSs; the
    /// `Content-Crs` header names it.
    #[param(value_type = Option<String>)]
    crs: Option<String>,
    /// Only features at this instant or within this interval (RFC 3339; `start/end`, `../end`,
    /// `start/..`; a date stands for its whole day): in the time of the dataset's declared
    /// temporal properties (its extent's `x-geoflow-datetime`), else when they were loaded.
    datetime: Option<String>,
    /// The page after this one: taken from a `next` link, opaque to clients.
    cursor: Option<String>,
    /// The page before this one: taken from a `prev` link, opaque to clients.
    before: Option<String>,
    /// Only these properties in each feature, comma-separated (default: all of them).
    #[param(style = Form)]
    properties: Option<Vec<String>>,
    /// Leave the geometries out (default: false).
    #[param(rename = "skipGeometry")]
    skip_geometry: Option<bool>,
    /// Only features this CQL2 expression selects (OGC API – Features Part 3), e.g.
    /// `pop_max > 1000000 AND name LIKE 'S%'` or
    /// `S_INTERSECTS(geometry, POLYGON((-10 36, -5 36, -5 42, -10 42, -10 36)))`. The
    /// collection's queryables name the properties; `geometry` is the feature geometry.
    filter: Option<String>,
    /// The encoding of `filter`: `cql2-text` (default) or `cql2-json`; `cql-text` is read as
    /// `cql2-text`.
    #[param(rename = "filter-lang")]
    filter_lang: Option<String>,
    /// The CRS of the filter's geometry literals, any of the CRSs features are served in (the
    /// collections' `crs` list): CRS84 by default, longitude first; EPSG:4326 latitude first.
    #[param(rename = "filter-crs")]
    filter_crs: Option<String>,
    /// The order of the features: properties among the collection's sortables, comma-separated,
    /// each ascending or, prefixed with `-`, descending (`name,-pop`). NULLs sort after every
    /// value, text by code point, ties by feature id. Default: by feature id.
    #[param(style = Form)]
    sortby: Option<Vec<String>>,
    /// `json` (GeoJSON), `html`, `csv` (the geometry as WKT) or `geojsonseq` (GeoJSON Text
    /// Sequences); default: from the Accept header.
    #[param(value_type = Option<ItemsFormatName>)]
    f: Option<String>,
}

/// Sets what the API definition can only know at run time, or cannot derive: the page size's
/// maximum, `bbox` as one comma-separated parameter (`explode: false`), and the URIs of the
/// served CRSs, listed once as the schema `CrsUri` that `crs` and `bbox-crs` refer to.
pub(super) fn declare_items_parameters(document: &mut Value, max_limit: usize, served: &CrsList) {
    if let Some(Value::Object(schemas)) = document.pointer_mut("/components/schemas") {
        let uris = served.uris();
        schemas.insert(
            CRS_URI_SCHEMA.into(),
            json!({ "type": "string", "format": "uri", "enum": uris, "description": "A CRS features are served in" }),
        );
    }
    let crs_uri = json!({ "$ref": format!("#/components/schemas/{CRS_URI_SCHEMA}") });
    for path in [
        "/paths/~1collections~1{collectionId}~1items/get/parameters",
        "/paths/~1collections~1{collectionId}~1items~1{featureId}/get/parameters",
    ] {
        let Some(Value::Array(parameters)) = document.pointer_mut(path) else { continue };
        for parameter in parameters {
            match parameter["name"].as_str() {
                Some("limit") => parameter["schema"]["maximum"] = json!(max_limit),
                Some("bbox" | "properties" | "sortby") => parameter["explode"] = json!(false),
                Some("crs" | "bbox-crs" | "filter-crs") => parameter["schema"] = crs_uri.clone(),
                // Clients read the languages from here: GDAL 3.6 sends `-where` to the server as
                // `cql-text` when this list names it.
                Some("filter-lang") => {
                    parameter["schema"] = json!({ "type": "string", "enum": FilterLang::NAMES, "default": "cql2-text" })
                }
                _ => {}
            }
        }
    }
}

/// The name of the schema of the served CRSs' URIs in the API definition.
const CRS_URI_SCHEMA: &str = "CrsUri";

/// The parameters of `items` besides property filters: a property of the same name cannot
/// take them over.
const ITEMS_PARAMETERS: [&str; 15] = [
    "f",
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "crs",
    "datetime",
    "cursor",
    "before",
    "properties",
    "skipGeometry",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
];

/// Adds each collection's items path: the generic one's parameters, and each of its
/// properties as an equality filter.
pub(super) fn declare_collection_items(document: &mut Value, datasets: &[DatasetInfo]) {
    let Some(generic) = document.pointer("/paths/~1collections~1{collectionId}~1items/get").cloned() else { return };
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for d in datasets {
        let mut get = generic.clone();
        get["operationId"] = json!(format!("items_{}", d.name.as_str()));
        get["summary"] = json!(format!("The features of {}", d.name.as_str()));
        if let Some(Value::Array(parameters)) = get.get_mut("parameters") {
            parameters.retain(|p| p["in"] != "path");
            for c in d.columns.iter().filter(|c| !ITEMS_PARAMETERS.contains(&c.key.as_str())) {
                parameters.push(json!({
                    "name": c.key,
                    "in": "query",
                    "required": false,
                    "description": "Only features whose property has this value, compared as text: a string by its \
                                    characters, a number or boolean as JSON writes it (42, 1.5, true)",
                    "schema": { "type": "string" },
                }));
            }
        }
        paths.insert(format!("/collections/{}/items", d.name.as_str()), json!({ "get": get }));
    }
}

/// The representations served.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum FormatName {
    Json,
    Html,
}

/// The representations of feature pages.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ItemsFormatName {
    Json,
    Html,
    Csv,
    Geojsonseq,
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/items",
    tag = "features",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"), ItemsParams),
    responses(
        (status = 200, description = "A page of features as a GeoJSON FeatureCollection, with `next` when more follow; any property of the collection may be used as an equality filter (`?name=Lisbon`)", content((Object = "application/geo+json"), (String = "text/html"), (String = "text/csv"), (String = "application/geo+json-seq"))),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 400, description = "A bad or unknown parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let d = dataset(&state, &id).await?;
    let request = items_request(params, &headers, &d, state.config.max_items_limit, &state.crs)?;
    let content_crs = content_crs(&request.crs);
    let base = base_url(&headers);
    let mut key: Vec<String> = request.carried.iter().map(|(k, v)| format!("{k}={v}")).collect();
    key.sort();
    let etag = digest(&[
        d.name.as_str(),
        &state_of(&d),
        request.format.name(),
        &base,
        &key.join("&"),
        &request.position.as_ref().map(|(param, token)| format!("{param}={token}")).unwrap_or_default(),
        &request.query.limit.to_string(),
    ]);
    let limit = request.query.limit;
    // A page before a cursor asks for one feature more: whether it comes tells whether yet
    // another page lies before this one. (Such a page is held whole by the store anyway.)
    let mut earlier = false;
    let offset = request.offset;
    let features = if request.query.before.is_some() {
        let query = FeatureQuery { limit: limit + 1, ..request.query.clone() };
        let stream = state.features.described_features(&d, &query).await.map_err(read_problem)?;
        let mut page: Vec<_> = stream.try_collect().await.map_err(read_problem)?;
        if page.len() > limit {
            page.remove(0);
            earlier = true;
        }
        futures_util::stream::iter(page.into_iter().map(Ok)).boxed()
    } else {
        // One feature more than the page tells whether another page follows: no `next` link
        // leads to an empty page.
        let query = FeatureQuery { limit: offset + limit + 1, ..request.query.clone() };
        state.features.described_features(&d, &query).await.map_err(read_problem)?
    };
    // A page from an offset is that many features further on; its neighbours are reached by
    // cursor from its first and last feature.
    let features = features.skip(offset);
    let path = format!("/collections/{}/items", d.name.as_str());
    let mut self_params = request.carried.clone();
    if let Some((param, token)) = &request.position {
        self_params.push(((*param).into(), token.clone()));
    }
    let sort = request.query.sort.clone();
    let self_url = url_with(&base, &path, &self_params);
    let (after, before) = (request.query.after, request.query.before);
    // Which neighbours a page has, given how many features it holds and whether one more
    // came after them.
    let has_next = move |returned: usize, more: bool| more || (before.is_some() && returned > 0);
    let has_prev = move |returned: usize| returned > 0 && (after.is_some() || earlier || offset > 0);
    let carried: Vec<(String, String)> = request.carried.iter().filter(|(k, _)| k != "offset").cloned().collect();
    let response = match request.format {
        Format::Json => {
            let number_matched = (!request.filtered).then_some(d.feature_count);
            let collection_url = format!("{base}/collections/{}", d.name.as_str());
            // The page's end: its links, from its first and last feature, and counts.
            let close = move |mut page: JsonPage| {
                let mut links = vec![
                    link(self_url.clone(), "self", GEOJSON, "This page"),
                    link(
                        format!("{self_url}{}f=html", if self_url.contains('?') { '&' } else { '?' }),
                        "alternate",
                        "text/html",
                        "This page as HTML",
                    ),
                    link(collection_url, "collection", "application/json", "The collection"),
                ];
                if let (true, Some(last)) = (has_next(page.returned, page.more), &page.last) {
                    let mut next = carried.clone();
                    next.push(("cursor".into(), cursor_of(&sort, last)));
                    links.push(link(url_with(&base, &path, &next), "next", GEOJSON, "The next page"));
                }
                if let (true, Some(first)) = (has_prev(page.returned), &page.first) {
                    let mut prev = carried;
                    prev.push(("before".into(), cursor_of(&sort, first)));
                    links.push(link(url_with(&base, &path, &prev), "prev", GEOJSON, "The previous page"));
                }
                let mut tail = json!({
                    "numberReturned": page.returned,
                    "timeStamp": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
                    "links": links,
                });
                if let Some(n) = number_matched {
                    tail["numberMatched"] = json!(n);
                }
                let tail = tail.to_string();
                page.text.push_str("],");
                page.text.push_str(&tail[1..]);
                page.text
            };
            let body = json_body(features, JsonPage::new(limit), close).await?;
            ([(header::CONTENT_TYPE, GEOJSON)], body).into_response()
        }
        Format::Csv | Format::GeoJsonSeq => {
            // Neither format has room for links: the page names itself and its GeoJSON twin,
            // whose `next` link leads on, in a Link header (RFC 8288).
            let mut json_params: Vec<(String, String)> =
                self_params.iter().filter(|(k, _)| k != "f").cloned().collect();
            json_params.push(("f".into(), "json".into()));
            let links = format!(
                "<{self_url}>; rel=\"self\", <{}>; rel=\"alternate\"; type=\"{GEOJSON}\", \
                 <{base}/collections/{}>; rel=\"collection\"",
                url_with(&base, &path, &json_params),
                d.name.as_str(),
            );
            let (content_type, disposition, body) = if request.format == Format::Csv {
                let keys = d.columns.iter().filter(|c| request.query.shows(&c.key)).map(|c| c.key.clone()).collect();
                let csv = Csv::new(keys, !request.query.skip_geometry);
                let disposition = format!("attachment; filename=\"{}.csv\"", d.name.as_str());
                (export::CSV, Some(disposition), export::body(features, limit, csv))
            } else {
                (export::GEOJSON_SEQ, None, export::body(features, limit, Sequence))
            };
            let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
            let h = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&links) {
                h.insert(header::LINK, v);
            }
            if let Some(v) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
        Format::Html => {
            let mut rows = String::new();
            let mut features = features;
            let (mut first, mut last) = (None, None);
            let mut returned = 0;
            let mut more = false;
            while let Some(feature) = features.next().await {
                if returned == limit {
                    more = true;
                    break;
                }
                let feature = feature.map_err(read_problem)?;
                let value: Value = serde_json::from_str(&feature.json).unwrap_or(Value::Null);
                let props = value["properties"].as_object().map_or(String::new(), |p| {
                    p.iter()
                        .map(|(k, v)| format!("<b>{}</b>: {}", escape(k), escape(&v.to_string())))
                        .collect::<Vec<_>>()
                        .join("<br>")
                });
                let _ = write!(
                    rows,
                    "<tr><td><a href=\"{path}/{fid}?f=html\">{fid}</a></td><td>{}</td><td>{props}</td></tr>",
                    escape(value["geometry"]["type"].as_str().unwrap_or("")),
                    fid = feature.fid
                );
                returned += 1;
                if first.is_none() {
                    first = Some((feature.fid, feature.sort_values.clone()));
                }
                last = Some((feature.fid, feature.sort_values));
            }
            let mut next = String::new();
            let mut html_params = carried.clone();
            html_params.retain(|(k, _)| k != "f");
            html_params.push(("f".into(), "html".into()));
            if let (true, Some(first)) = (has_prev(returned), first) {
                let mut params = html_params.clone();
                params.push(("before".into(), cursor_of(&sort, &first)));
                next.push_str(&format!("<a href=\"{}\">Previous page</a> ", escape(&url_with("", &path, &params))));
            }
            if let (true, Some(last)) = (has_next(returned, more), last) {
                let mut params = html_params;
                params.push(("cursor".into(), cursor_of(&sort, &last)));
                next.push_str(&format!("<a href=\"{}\">Next page</a>", escape(&url_with("", &path, &params))));
            }
            let next = format!("<p>{next}</p>");
            let html = format!("<table><tr><th>id</th><th>geometry</th><th>properties</th></tr>{rows}</table>{next}");
            Html(html_page(d.name.as_str(), &html)).into_response()
        }
    };
    Ok(with_content_crs(validated(&headers, etag, Some(&d.updated_at), response), content_crs))
}

/// Bytes of a GeoJSON page gathered before they are sent: a page that fits goes whole.
const JSON_CHUNK: usize = 64 << 10;

/// A GeoJSON page as it is written: its text so far and what its links are made of.
struct JsonPage {
    text: String,
    limit: usize,
    returned: usize,
    /// Whether a feature came after the page was full: another page follows.
    more: bool,
    first: Option<(i64, Vec<SortValue>)>,
    last: Option<(i64, Vec<SortValue>)>,
}

impl JsonPage {
    fn new(limit: usize) -> JsonPage {
        JsonPage {
            text: String::from(r#"{"type":"FeatureCollection","features":["#),
            limit,
            returned: 0,
            more: false,
            first: None,
            last: None,
        }
    }

    /// Adds a feature to the page; `false` when the page was full already (the feature only
    /// tells that more follow).
    fn push(&mut self, feature: StoredFeature) -> bool {
        if self.returned == self.limit {
            self.more = true;
            return false;
        }
        if self.returned > 0 {
            self.text.push(',');
        }
        self.text.push_str(&feature.json);
        self.returned += 1;
        if self.first.is_none() {
            self.first = Some((feature.fid, feature.sort_values.clone()));
        }
        self.last = Some((feature.fid, feature.sort_values));
        true
    }
}

/// The body of a GeoJSON page, `close` writing its end. A page that fits in one chunk is
/// read before the headers go, and sent whole with its length: no task or channel per
/// request, and a read that fails is an error response. A larger one streams from a task of
/// its own, in chunks, and one that fails then is cut short so that no client takes it whole.
async fn json_body<S>(
    mut features: S,
    mut page: JsonPage,
    close: impl FnOnce(JsonPage) -> String + Send + 'static,
) -> Result<Body, Problem>
where
    S: futures_util::Stream<Item = Result<StoredFeature, StoreError>> + Send + Unpin + 'static,
{
    while page.text.len() < JSON_CHUNK {
        let full = match features.next().await {
            Some(Ok(feature)) => !page.push(feature),
            None => true,
            Some(Err(e)) => return Err(read_problem(e)),
        };
        if full {
            return Ok(Body::from(close(page)));
        }
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        loop {
            if page.text.len() >= JSON_CHUNK && tx.send(Ok(Bytes::from(std::mem::take(&mut page.text)))).await.is_err()
            {
                return;
            }
            match features.next().await {
                Some(Ok(feature)) => {
                    if !page.push(feature) {
                        break;
                    }
                }
                None => break,
                Some(Err(e)) => {
                    tracing::error!(error = %e, "reading features failed mid-response");
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            }
        }
        let _ = tx.send(Ok(Bytes::from(close(page)))).await;
    });
    Ok(Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))))
}

/// The `Content-Crs` header's value: the URI of the geometries' CRS in angle brackets.
fn content_crs(crs: &ServedCrs) -> HeaderValue {
    HeaderValue::from_str(&format!("<{}>", crs.uri())).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Names the CRS of a response's geometries (OGC API – Features Part 2), except on a `304`,
/// which has no body.
fn with_content_crs(mut response: Response, value: HeaderValue) -> Response {
    if response.status() != StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(HeaderName::from_static("content-crs"), value);
    }
    response
}

/// The query parameters of one feature.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemParams {
    /// `json` or `html` (default: from the Accept header).
    #[param(value_type = Option<FormatName>)]
    f: Option<String>,
    /// The CRS of the geometry, by URI: one of the collection's `crs` list (default: CRS84,
    /// longitude/latitude). Coordinates come in the axis order of the CRS's authority
    /// (latitude first for EPSG:4326); the `Content-Crs` header names it.
    #[param(value_type = Option<String>)]
    crs: Option<String>,
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/items/{featureId}",
    tag = "features",
    params(
        ("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"),
        ("featureId" = String, Path, description = "A feature's id"),
        ItemParams,
    ),
    responses(
        (status = 200, description = "One feature as GeoJSON", content((Object = "application/geo+json"), (String = "text/html"))),
        (status = 400, description = "A bad parameter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection or feature", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn item(
    State(state): State<AppState>,
    Path((id, feature_id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(p): Query<ItemParams>,
) -> Result<Response, Problem> {
    let format = Format::negotiate(p.f.as_deref(), &headers, DOCUMENT_FORMATS)?;
    let crs = match &p.crs {
        Some(uri) => choose_crs(&state.crs, "crs", uri)?,
        None => ServedCrs::crs84(),
    };
    let unknown = || Problem::not_found(format!("collection {id:?} has no feature {feature_id:?}"));
    let name = DatasetName::new(&id).map_err(|_| unknown())?;
    let fid = feature_id.parse::<i64>().map_err(|_| unknown())?;
    // One read, no catalog listing: the store knows its datasets, and the validator is the
    // feature itself, so it changes exactly when a load changes the feature.
    let in_crs = Some(&crs).filter(|c| !c.is_stored_crs());
    let feature = state.features.feature(&name, fid, in_crs).await.map_err(read_problem)?.ok_or_else(unknown)?;
    let base = base_url(&headers);
    let uri = crs.uri();
    let etag = digest(&[&feature.json, format.name(), &base, &uri]);
    let path = format!("/collections/{}/items/{fid}", name.as_str());
    // Links keep the CRS asked for.
    let carried: Vec<(String, String)> = p.crs.iter().map(|c| ("crs".to_string(), c.clone())).collect();
    let url = url_with(&base, &path, &carried);
    let html_url = url_with(&base, &path, &[carried.clone(), vec![("f".into(), "html".into())]].concat());
    let response = match format {
        Format::Json | Format::Csv | Format::GeoJsonSeq => {
            let links = json!([
                link(url.clone(), "self", GEOJSON, "This feature"),
                link(html_url, "alternate", "text/html", "This feature as HTML"),
                link(
                    format!("{base}/collections/{}", name.as_str()),
                    "collection",
                    "application/json",
                    "The collection"
                ),
            ]);
            // The store's text, with the links as one more member.
            let body = match feature.json.strip_suffix('}') {
                Some(open) => format!("{open},\"links\":{links}}}"),
                None => feature.json,
            };
            ([(header::CONTENT_TYPE, GEOJSON)], body).into_response()
        }
        Format::Html => {
            let value: Value = serde_json::from_str(&feature.json).unwrap_or(Value::Null);
            let rows: String = value["properties"].as_object().map_or(String::new(), |p| {
                p.iter()
                    .map(|(k, v)| format!("<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(&v.to_string())))
                    .collect()
            });
            let html = format!(
                "<table><tr><th>property</th><th>value</th></tr>{rows}</table><pre>{}</pre>",
                escape(&value["geometry"].to_string())
            );
            Html(html_page(&format!("{} {fid}", name.as_str()), &html)).into_response()
        }
    };
    Ok(with_content_crs(validated(&headers, etag, None, response), content_crs(&crs)))
}

fn read_problem(e: StoreError) -> Problem {
    match e {
        StoreError::NotFound { what, id } => Problem::not_found(format!("no {what} {id:?}")),
        StoreError::Invalid(reason) => Problem::bad_request("invalid-parameter", reason),
        e => Problem::store("database", e),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn html_links(body: &Value) -> String {
    let items: String = body["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(l["href"].as_str().unwrap_or("")),
                escape(l["title"].as_str().unwrap_or(""))
            )
        })
        .collect();
    format!("<ul>{items}</ul>")
}

fn html_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} – geoflow</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}</style></head>\
         <body><nav><a href=\"/?f=html\">geoflow</a> · <a href=\"/collections?f=html\">collections</a></nav>\
         <h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes() {
        let crs84 = ServedCrs::crs84();
        let parse_bbox = |text: &str| parse_bbox(text, &crs84);
        assert_eq!(parse_bbox("1,2,3,4").unwrap(), Bbox { min_x: 1.0, min_y: 2.0, max_x: 3.0, max_y: 4.0 });
        assert_eq!(parse_bbox("1,2,0,3,4,9").unwrap(), Bbox { min_x: 1.0, min_y: 2.0, max_x: 3.0, max_y: 4.0 });
        assert_eq!(parse_bbox("170,-10,-170,10").unwrap().min_x, 170.0, "across the antimeridian");
        for bad in ["1,2,3", "a,b,c,d", "0,10,1,5", "0,-91,1,0", "-181,0,1,1", "NaN,0,1,1"] {
            assert!(parse_bbox(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn boxes_in_other_crs_cover_the_box_given() {
        let served = CrsList::new(&[]);
        let lat_lon = served.choose("http://www.opengis.net/def/crs/EPSG/0/4326").unwrap();
        // Latitude first.
        assert_eq!(parse_bbox("2,1,4,3", &lat_lon).unwrap(), Bbox { min_x: 1.0, min_y: 2.0, max_x: 3.0, max_y: 4.0 });
        assert!(parse_bbox("1,-181,2,0", &lat_lon).is_err());
        let utm = served.choose("http://www.opengis.net/def/crs/EPSG/0/32633").unwrap();
        let b = parse_bbox("400000,5700000,600000,5800000", &utm).unwrap();
        // The northern edge bulges north between the corners: its middle is the northernmost.
        let mut middle = [geoflow_core::geometry::Pos::xy(500_000.0, 5_800_000.0)];
        utm.to_wgs84(&mut middle).unwrap();
        assert!((b.max_y - middle[0].y).abs() < 1e-9 && b.min_x < 13.6 && b.max_x > 16.4, "{b:?}");
        assert!(parse_bbox("600000,5700000,400000,5800000", &utm).is_err(), "lower corner first");
        assert!(parse_bbox("1e300,0,2e300,1", &utm).is_err());
    }

    #[test]
    fn intervals() {
        let t = |s: &str| OffsetDateTime::parse(s, &Rfc3339).unwrap();
        assert_eq!(
            parse_interval("2026-01-02T03:04:05Z").unwrap(),
            Some((Some(t("2026-01-02T03:04:05Z")), Some(t("2026-01-02T03:04:05Z"))))
        );
        assert_eq!(parse_interval("../2026-01-02T00:00:00Z").unwrap(), Some((None, Some(t("2026-01-02T00:00:00Z")))));
        assert_eq!(parse_interval("2026-01-02T00:00:00Z/..").unwrap(), Some((Some(t("2026-01-02T00:00:00Z")), None)));
        let day = parse_interval("2026-01-02").unwrap().unwrap();
        assert_eq!(day.0, Some(t("2026-01-02T00:00:00Z")));
        assert_eq!(day.1, Some(t("2026-01-02T23:59:59.999999999Z")));
        assert_eq!(parse_interval("../..").unwrap(), None);
        assert!(parse_interval("2026-01-03/2026-01-02").is_err());
        assert!(parse_interval("yesterday").is_err());
    }
}
