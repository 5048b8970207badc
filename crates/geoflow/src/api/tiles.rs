//! Mapbox Vector Tiles of every collection, as OGC API – Tiles (vector tilesets of a
//! collection, on WebMercatorQuad) and as TileJSON 3.0.0 for MapLibre, Leaflet or QGIS.
//!
//! A tile has one layer named after the collection; each feature's id is its `fid` and its
//! properties are the collection's under their original keys (see `geoflow_store::tiles`).
//! Tiles carry an `ETag` from the dataset's load version and the tile coordinates, so any load
//! makes caches revalidate and `If-None-Match` answers `304` without encoding anything; they
//! are gzipped for clients that accept it.

use std::io::Write as _;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use geoflow_core::schema::FieldType;
use geoflow_store::tiles::{TileId, MAX_LATITUDE, MAX_ZOOM};
use geoflow_store::DatasetInfo;
use serde_json::{json, Value};

use super::features::{base_url, dataset, digest, http_date, link, state_of, validated};
use super::problem::{Problem, ProblemBody};
use super::AppState;

/// The media type of Mapbox Vector Tiles.
pub const MVT: &str = "application/vnd.mapbox-vector-tile";

const WEB_MERCATOR_QUAD: &str = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad";
const EPSG_3857: &str = "http://www.opengis.net/def/crs/EPSG/0/3857";
const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// Whether `If-None-Match` names one of `tags` (quoted), weakly compared.
fn not_modified(headers: &HeaderMap, tags: &[&str]) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || tags.contains(&t)))
}

/// Adds the validators and caching headers (as the features API sends them).
fn with_validators(mut response: Response, etag: &str, updated_at: &str, vary: &'static str) -> Response {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = http_date(updated_at).and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    // Caches may keep a copy but must ask again each time; the ETag makes asking cheap.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static(vary));
    response
}

/// A JSON document with its validator; `304` when the client holds it.
fn json_document(headers: &HeaderMap, d: &DatasetInfo, what: &str, base: &str, body: &Value) -> Response {
    let etag = digest(&[d.name.as_str(), &state_of(d), what, base]);
    let response = ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    validated(headers, etag, Some(&d.updated_at), response)
}

/// The tile URL template of a collection.
fn tile_template(base: &str, id: &str) -> String {
    format!("{base}/collections/{id}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}")
}

/// What the tileset list and the tileset itself both say of the tileset.
fn tileset_summary(base: &str, id: &str) -> serde_json::Map<String, Value> {
    serde_json::Map::from_iter([
        ("title".into(), format!("{id} (vector tiles, WebMercatorQuad)").into()),
        ("dataType".into(), "vector".into()),
        ("crs".into(), EPSG_3857.into()),
        ("tileMatrixSetURI".into(), WEB_MERCATOR_QUAD.into()),
        ("links".into(), tileset_links(base, id).into()),
    ])
}

fn tileset_links(base: &str, id: &str) -> Vec<Value> {
    let tileset = format!("{base}/collections/{id}/tiles/WebMercatorQuad");
    vec![
        link(tileset.clone(), "self", "application/json", "The tileset"),
        json!({
            "href": format!("{tileset}/{{tileMatrix}}/{{tileCol}}/{{tileRow}}"),
            "rel": "item",
            "type": MVT,
            "templated": true,
            "title": "The tiles (tileMatrix is the zoom, tileCol the column x, tileRow the row y)",
        }),
        link(format!("{tileset}/tilejson.json"), "describedby", "application/json", "The tileset as TileJSON 3.0.0"),
        link(
            WEB_MERCATOR_QUAD.to_string(),
            "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
            "application/json",
            "WebMercatorQuad",
        ),
        link(format!("{base}/collections/{id}"), "collection", "application/json", "The collection"),
    ]
}

/// `[west, south, east, north]` of the collection within WebMercator's latitudes.
fn bounds(d: &DatasetInfo) -> [f64; 4] {
    match d.bbox {
        Some(b) => [
            b.min_x.clamp(-180.0, 180.0),
            b.min_y.clamp(-MAX_LATITUDE, MAX_LATITUDE),
            b.max_x.clamp(-180.0, 180.0),
            b.max_y.clamp(-MAX_LATITUDE, MAX_LATITUDE),
        ],
        None => [-180.0, -MAX_LATITUDE, 180.0, MAX_LATITUDE],
    }
}

/// The TileJSON type of a property as tiles carry it.
fn field_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Boolean => "Boolean",
        FieldType::Integer | FieldType::WideInteger | FieldType::Real => "Number",
        FieldType::Date | FieldType::DateTime | FieldType::Text | FieldType::Json | FieldType::Null => "String",
    }
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles",
    tag = "tiles",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The vector tilesets of the collection (OGC API – Tiles): one, on WebMercatorQuad", body = Object),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn tilesets(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = dataset(&state, &id).await?;
    let base = base_url(&headers);
    let id = d.name.as_str();
    let body = json!({
        "links": [
            link(format!("{base}/collections/{id}/tiles"), "self", "application/json", "The tilesets"),
            link(format!("{base}/collections/{id}"), "collection", "application/json", "The collection"),
        ],
        "tilesets": [tileset_summary(&base, id)],
    });
    Ok(json_document(&headers, &d, "tilesets", &base, &body))
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles/WebMercatorQuad",
    tag = "tiles",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The tileset (OGC API – Tiles): its tile template, layer and extent, and a link to its TileJSON", body = Object),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn tileset(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = dataset(&state, &id).await?;
    let base = base_url(&headers);
    let id = d.name.as_str();
    let [w, s, e, n] = bounds(&d);
    let properties: serde_json::Map<String, Value> =
        d.columns.iter().map(|c| (c.key.clone(), json!({ "type": field_type(c.ty).to_ascii_lowercase() }))).collect();
    let mut body = tileset_summary(&base, id);
    body.extend([
        ("boundingBox".into(), json!({ "lowerLeft": [w, s], "upperRight": [e, n], "crs": CRS84 })),
        (
            "tileMatrixSetLimits".into(),
            (0..=MAX_ZOOM).map(|z| json!({ "tileMatrix": z.to_string() })).collect::<Vec<_>>().into(),
        ),
        (
            "layers".into(),
            json!([{
                "id": id,
                "dataType": "vector",
                "minTileMatrix": "0",
                "maxTileMatrix": MAX_ZOOM.to_string(),
                "propertiesSchema": { "type": "object", "properties": properties },
            }]),
        ),
    ]);
    Ok(json_document(&headers, &d, "tileset", &base, &Value::Object(body)))
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles/WebMercatorQuad/tilejson.json",
    tag = "tiles",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The tileset as TileJSON 3.0.0 (tile URL template, zoom range, bounds, the layer's fields)", body = Object),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn tilejson(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let d = dataset(&state, &id).await?;
    let base = base_url(&headers);
    let id = d.name.as_str();
    let [w, s, e, n] = bounds(&d);
    let fields: serde_json::Map<String, Value> =
        d.columns.iter().map(|c| (c.key.clone(), Value::from(field_type(c.ty)))).collect();
    let body = json!({
        "tilejson": "3.0.0",
        "name": id,
        "description": format!("{} features from {} source(s)", d.feature_count, d.sources),
        "version": d.version.to_string(),
        "scheme": "xyz",
        "tiles": [tile_template(&base, id)],
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "bounds": [w, s, e, n],
        "center": [(w + e) / 2.0, (s + n) / 2.0, 0],
        "vector_layers": [{
            "id": id,
            "description": format!("The features of {id}; each feature's id is its fid"),
            "minzoom": 0,
            "maxzoom": MAX_ZOOM,
            "fields": fields,
        }],
    });
    Ok(json_document(&headers, &d, "tilejson", &base, &body))
}

/// Whether the client accepts a gzipped body (`Accept-Encoding` names `gzip` or `*` with a
/// non-zero quality).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or_default();
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let zero = parts.any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero
    })
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 2), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// Tile coordinates from the path: `400` when they are not numbers or name no tile.
fn tile_id(z: &str, x: &str, y: &str) -> Result<TileId, Problem> {
    let bad = |detail: String| Problem::bad_request("invalid-parameter", detail);
    let z: u32 = z.parse().map_err(|_| bad(format!("zoom {z:?} is not a number")))?;
    let x: u64 = x.parse().map_err(|_| bad(format!("column {x:?} is not a number")))?;
    let y: u64 = y.parse().map_err(|_| bad(format!("row {y:?} is not a number")))?;
    TileId::new(z, x, y).map_err(|e| bad(e.to_string()))
}

/// One vector tile.
///
/// Answers `200` with the tile (`application/vnd.mapbox-vector-tile`, gzipped when the request
/// accepts gzip), **`204 No Content` when no feature is in the tile** (an empty body, with the
/// same validators), `304` when `If-None-Match` holds the tile's ETag, `400` for coordinates
/// outside WebMercatorQuad (zoom 0 to 22, column and row below 2^zoom) and `404` for an unknown
/// collection.
#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles/WebMercatorQuad/{z}/{x}/{y}",
    tag = "tiles",
    params(
        ("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"),
        ("z" = u32, Path, description = "Zoom level (tileMatrix), 0 to 22", minimum = 0, maximum = 22),
        ("x" = u32, Path, description = "Column (tileCol), from the west, below 2^z"),
        ("y" = u32, Path, description = "Row (tileRow), from the north, below 2^z"),
    ),
    responses(
        (status = 200, description = "The Mapbox Vector Tile: one layer named after the collection, feature ids are fids", content_type = "application/vnd.mapbox-vector-tile"),
        (status = 204, description = "No feature is in this tile"),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 400, description = "Coordinates outside WebMercatorQuad", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such collection", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn tile(
    State(state): State<AppState>,
    Path((id, z, x, y)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let tile = tile_id(&z, &x, &y)?;
    let d = dataset(&state, &id).await?;
    let tag = digest(&[d.name.as_str(), &state_of(&d), &tile.to_string()]);
    let (plain_tag, gzip_tag) = (format!("\"{tag}\""), format!("\"{tag}-gzip\""));
    let gzipped = accepts_gzip(&headers);
    let etag = if gzipped { &gzip_tag } else { &plain_tag };
    let vary = "accept-encoding, authorization";
    if not_modified(&headers, &[&plain_tag, &gzip_tag]) {
        return Ok(with_validators(StatusCode::NOT_MODIFIED.into_response(), etag, &d.updated_at, vary));
    }
    let bytes = match state.tiles.tile(&d.name, tile).await {
        Ok(Some(bytes)) => bytes,
        // Removed since the catalog was read.
        Ok(None) => return Err(Problem::not_found(format!("no collection {id:?}"))),
        Err(e) => return Err(Problem::store("database", e)),
    };
    metrics::counter!("geoflow_tiles_served_total", "empty" => if bytes.is_empty() { "true" } else { "false" })
        .increment(1);
    if bytes.is_empty() {
        return Ok(with_validators(StatusCode::NO_CONTENT.into_response(), etag, &d.updated_at, vary));
    }
    let response = if gzipped {
        let body = gzip(&bytes).map_err(|e| Problem::unavailable("compressing the tile", e))?;
        ([(header::CONTENT_TYPE, MVT), (header::CONTENT_ENCODING, "gzip")], body).into_response()
    } else {
        ([(header::CONTENT_TYPE, MVT)], bytes).into_response()
    };
    Ok(with_validators(response, etag, &d.updated_at, vary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_negotiated() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn coordinates_are_checked() {
        assert_eq!(tile_id("3", "7", "0").unwrap(), TileId { z: 3, x: 7, y: 0 });
        for (z, x, y) in [("30", "0", "0"), ("3", "8", "0"), ("3", "0", "8"), ("a", "0", "0"), ("1", "-1", "0")] {
            assert_eq!(tile_id(z, x, y).unwrap_err().status(), StatusCode::BAD_REQUEST, "{z}/{x}/{y}");
        }
    }

    #[test]
    fn if_none_match_names_either_encoding() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("W/\"abc-gzip\", \"x\""));
        assert!(not_modified(&h, &["\"abc\"", "\"abc-gzip\""]));
        assert!(!not_modified(&h, &["\"abd\""]));
    }
}
