//! Mapbox Vector Tiles of every collection, as OGC API – Tiles (vector tilesets of a
//! collection on WebMercatorQuad and WorldCRS84Quad, and the definitions of both tile matrix
//! sets at `/tileMatrixSets`) and as TileJSON 3.0.0 for MapLibre, Leaflet or QGIS.
//!
//! A tile has one layer named after the collection; each feature's id is its `fid` and its
//! properties are the collection's under their original keys (see `geoflow_store::tiles`).
//! Tiles carry an `ETag` from the dataset's load version and the tile coordinates, so any load
//! makes caches revalidate and `If-None-Match` answers `304` without encoding anything; they
//! are gzipped for clients that accept it. A tile thinned to fit its size budget says how many
//! features it left out in [`FEATURES_OMITTED`].

use std::io::Write as _;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use geoflow_core::schema::FieldType;
use geoflow_store::tiles::{TileId, TileMatrixSet, MAX_ZOOM, TILE_SIZE_PX};
use geoflow_store::DatasetInfo;
use serde_json::{json, Value};

use super::features::{base_url, dataset, digest, http_date, link, state_of, validated};
use super::problem::{Problem, ProblemBody};
use super::AppState;

/// The media type of Mapbox Vector Tiles.
pub const MVT: &str = "application/vnd.mapbox-vector-tile";

/// The response header of a tile that counts the features in it that thinning left out to
/// keep the tile within its size budget (0 when the tile holds every feature in it).
pub const FEATURES_OMITTED: HeaderName = HeaderName::from_static("geoflow-features-omitted");

const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
const TILING_SCHEME: &str = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme";

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

/// The tile matrix set a path names: `404` for any other.
fn tile_matrix_set(id: &str) -> Result<TileMatrixSet, Problem> {
    TileMatrixSet::from_id(id).ok_or_else(|| {
        let known: Vec<&str> = TileMatrixSet::ALL.iter().map(|t| t.id()).collect();
        Problem::not_found(format!("no tile matrix set {id:?}; there are {}", known.join(" and ")))
    })
}

fn tile_matrix_set_url(base: &str, tms: TileMatrixSet) -> String {
    format!("{base}/tileMatrixSets/{}", tms.id())
}

fn tileset_url(base: &str, id: &str, tms: TileMatrixSet) -> String {
    format!("{base}/collections/{id}/tiles/{}", tms.id())
}

/// The TileJSON tile URL template of a collection (WebMercatorQuad, which TileJSON assumes).
fn tilejson_template(base: &str, id: &str) -> String {
    format!("{}/{{z}}/{{y}}/{{x}}", tileset_url(base, id, TileMatrixSet::WebMercatorQuad))
}

/// What the tileset list and the tileset itself both say of a tileset.
fn tileset_summary(base: &str, id: &str, tms: TileMatrixSet) -> serde_json::Map<String, Value> {
    serde_json::Map::from_iter([
        ("title".into(), format!("{id} (vector tiles, {tms})").into()),
        ("dataType".into(), "vector".into()),
        ("crs".into(), tms.crs().into()),
        ("tileMatrixSetURI".into(), tms.uri().into()),
        ("links".into(), tileset_links(base, id, tms).into()),
    ])
}

fn tileset_links(base: &str, id: &str, tms: TileMatrixSet) -> Vec<Value> {
    let tileset = tileset_url(base, id, tms);
    let mut links = vec![
        link(tileset.clone(), "self", "application/json", "The tileset"),
        json!({
            "href": format!("{tileset}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"),
            "rel": "item",
            "type": MVT,
            "templated": true,
            "title": "The tiles (tileMatrix is the zoom level, tileRow the row from the north, tileCol the column from the west)",
        }),
        link(tile_matrix_set_url(base, tms), TILING_SCHEME, "application/json", tms.id()),
        link(format!("{base}/collections/{id}"), "collection", "application/json", "The collection"),
    ];
    if tms == TileMatrixSet::WebMercatorQuad {
        links.push(link(
            format!("{tileset}/tilejson.json"),
            "describedby",
            "application/json",
            "The tileset as TileJSON 3.0.0",
        ));
    }
    links
}

/// `[west, south, east, north]` of the collection within the latitudes the tile matrix set
/// covers.
fn bounds(d: &DatasetInfo, tms: TileMatrixSet) -> [f64; 4] {
    let lat = tms.max_latitude();
    match d.bbox {
        Some(b) => [
            b.min_x.clamp(-180.0, 180.0),
            b.min_y.clamp(-lat, lat),
            b.max_x.clamp(-180.0, 180.0),
            b.max_y.clamp(-lat, lat),
        ],
        None => [-180.0, -lat, 180.0, lat],
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

/// What the OGC registry says of a tile matrix set besides its geometry: its title, the
/// order of its axes and its well-known scale set.
fn registry_entry(tms: TileMatrixSet) -> (&'static str, [&'static str; 2], &'static str) {
    match tms {
        TileMatrixSet::WebMercatorQuad => (
            "Google Maps Compatible for the World",
            ["X", "Y"],
            "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
        ),
        TileMatrixSet::WorldCrs84Quad => {
            ("CRS84 for the World", ["Lon", "Lat"], "http://www.opengis.net/def/wkss/OGC/1.0/GoogleCRS84Quad")
        }
    }
}

/// The tile matrix set as the 2D Tile Matrix Set standard (2.0) encodes it in JSON: every
/// level the registry defines, whichever are served.
fn tile_matrix_set_document(tms: TileMatrixSet) -> Value {
    let (title, axes, scale_set) = registry_entry(tms);
    let (origin_x, origin_y) = tms.point_of_origin();
    let matrices: Vec<Value> = (0..=tms.deepest_defined_level())
        .map(|z| {
            let (width, height) = tms.matrix_size(z);
            json!({
                "id": z.to_string(),
                "scaleDenominator": tms.scale_denominator(z),
                "cellSize": tms.cell_size(z),
                "cornerOfOrigin": "topLeft",
                "pointOfOrigin": [origin_x, origin_y],
                "tileWidth": TILE_SIZE_PX,
                "tileHeight": TILE_SIZE_PX,
                "matrixWidth": width,
                "matrixHeight": height,
            })
        })
        .collect();
    json!({
        "id": tms.id(),
        "title": title,
        "uri": tms.uri(),
        "crs": tms.crs(),
        "orderedAxes": axes,
        "wellKnownScaleSet": scale_set,
        "tileMatrices": matrices,
    })
}

fn static_json(body: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

#[utoipa::path(
    get,
    path = "/tileMatrixSets",
    tag = "tiles",
    responses(
        (status = 200, description = "The tile matrix sets that vector tiles are served on (OGC API – Tiles): WebMercatorQuad and WorldCRS84Quad", body = Object),
    ),
    security((), ("bearer" = []))
)]
pub async fn tile_matrix_sets(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let sets: Vec<Value> = TileMatrixSet::ALL
        .iter()
        .map(|&tms| {
            json!({
                "id": tms.id(),
                "title": registry_entry(tms).0,
                "uri": tms.uri(),
                "crs": tms.crs(),
                "links": [link(tile_matrix_set_url(&base, tms), TILING_SCHEME, "application/json", tms.id())],
            })
        })
        .collect();
    static_json(&json!({
        "links": [link(format!("{base}/tileMatrixSets"), "self", "application/json", "The tile matrix sets")],
        "tileMatrixSets": sets,
    }))
}

#[utoipa::path(
    get,
    path = "/tileMatrixSets/{tileMatrixSetId}",
    tag = "tiles",
    params(("tileMatrixSetId" = TileMatrixSet, Path, description = "A tile matrix set")),
    responses(
        (status = 200, description = "The definition of the tile matrix set (OGC Two Dimensional Tile Matrix Set 2.0, JSON)", body = Object),
        (status = 404, description = "No such tile matrix set", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn tile_matrix_set_definition(Path(tms): Path<String>) -> Result<Response, Problem> {
    Ok(static_json(&tile_matrix_set_document(tile_matrix_set(&tms)?)))
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles",
    tag = "tiles",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The vector tilesets of the collection (OGC API – Tiles): one on WebMercatorQuad, one on WorldCRS84Quad", body = Object),
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
        "tilesets": TileMatrixSet::ALL.iter().map(|&tms| tileset_summary(&base, id, tms)).collect::<Vec<_>>(),
    });
    Ok(json_document(&headers, &d, "tilesets", &base, &body))
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles/{tileMatrixSetId}",
    tag = "tiles",
    params(
        ("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"),
        ("tileMatrixSetId" = TileMatrixSet, Path, description = "A tile matrix set"),
    ),
    responses(
        (status = 200, description = "The tileset (OGC API – Tiles): its tile template, layer, extent and tile matrix set limits; on WebMercatorQuad, a link to its TileJSON", body = Object),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 404, description = "No such collection or tile matrix set", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn tileset(
    State(state): State<AppState>,
    Path((id, tms)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let tms = tile_matrix_set(&tms)?;
    let d = dataset(&state, &id).await?;
    let base = base_url(&headers);
    let id = d.name.as_str();
    let [w, s, e, n] = bounds(&d, tms);
    let properties: serde_json::Map<String, Value> =
        d.columns.iter().map(|c| (c.key.clone(), json!({ "type": field_type(c.ty).to_ascii_lowercase() }))).collect();
    let limits: Vec<Value> = (0..=MAX_ZOOM)
        .map(|z| {
            let (cols, rows) = tms.matrix_size(z);
            json!({ "tileMatrix": z.to_string(), "minTileRow": 0, "maxTileRow": rows - 1, "minTileCol": 0, "maxTileCol": cols - 1 })
        })
        .collect();
    let mut body = tileset_summary(&base, id, tms);
    body.extend([
        ("boundingBox".into(), json!({ "lowerLeft": [w, s], "upperRight": [e, n], "crs": CRS84 })),
        ("tileMatrixSetLimits".into(), limits.into()),
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
    Ok(json_document(&headers, &d, &format!("tileset {tms}"), &base, &Value::Object(body)))
}

#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles/WebMercatorQuad/tilejson.json",
    tag = "tiles",
    params(("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$")),
    responses(
        (status = 200, description = "The WebMercatorQuad tileset as TileJSON 3.0.0 (tile URL template, zoom range, bounds, the layer's fields)", body = Object),
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
    let [w, s, e, n] = bounds(&d, TileMatrixSet::WebMercatorQuad);
    let fields: serde_json::Map<String, Value> =
        d.columns.iter().map(|c| (c.key.clone(), Value::from(field_type(c.ty)))).collect();
    let body = json!({
        "tilejson": "3.0.0",
        "name": id,
        "description": format!("{} features from {} source(s)", d.feature_count, d.sources),
        "version": d.version.to_string(),
        "scheme": "xyz",
        "tiles": [tilejson_template(&base, id)],
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

/// Tile coordinates from the path: `400` naming the parameter when they are not numbers or
/// name no tile of the tile matrix set.
fn tile_id(tms: TileMatrixSet, z: &str, row: &str, col: &str) -> Result<TileId, Problem> {
    let bad = |detail: String| Problem::bad_request("invalid-parameter", detail);
    let number = |name: &str, value: &str| {
        value.parse::<u64>().map_err(|_| bad(format!("{name}={value:?}: expected an integer from 0")))
    };
    let (z, row, col) = (number("tileMatrix", z)?, number("tileRow", row)?, number("tileCol", col)?);
    TileId::new(tms, z, row, col).map_err(|e| bad(format!("{}: {e}", e.parameter())))
}

/// One vector tile.
///
/// Answers `200` with the tile (`application/vnd.mapbox-vector-tile`, gzipped when the request
/// accepts gzip), **`204 No Content` when no feature is in the tile** (an empty body, with the
/// same validators), `304` when `If-None-Match` holds the tile's ETag, `400` for coordinates
/// outside the tile matrix set (levels 0 to 22; WebMercatorQuad has 2^level rows and columns,
/// WorldCRS84Quad 2^level rows and twice as many columns) and `404` for an unknown collection
/// or tile matrix set. `Geoflow-Features-Omitted` counts the features in the tile that
/// thinning left out to keep it within its size budget.
#[utoipa::path(
    get,
    path = "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
    tag = "tiles",
    params(
        ("collectionId" = String, Path, description = "A dataset name", pattern = "^[a-z][a-z0-9_]{0,62}$"),
        ("tileMatrixSetId" = TileMatrixSet, Path, description = "A tile matrix set"),
        ("tileMatrix" = u32, Path, description = "Zoom level, 0 to 22", minimum = 0, maximum = 22),
        ("tileRow" = u32, Path, description = "Row, from the north, below 2^tileMatrix"),
        ("tileCol" = u32, Path, description = "Column, from the west, below 2^tileMatrix (WebMercatorQuad) or 2^(tileMatrix+1) (WorldCRS84Quad)"),
    ),
    responses(
        (status = 200, description = "The Mapbox Vector Tile: one layer named after the collection, feature ids are fids", content_type = "application/vnd.mapbox-vector-tile",
            headers(("geoflow-features-omitted" = u64, description = "Features in the tile that thinning left out to keep it within its size budget (0: none)"))),
        (status = 204, description = "No feature is in this tile",
            headers(("geoflow-features-omitted" = u64, description = "Always 0: no feature is in the tile"))),
        (status = 304, description = "Not modified since the ETag given in If-None-Match"),
        (status = 400, description = "Coordinates outside the tile matrix set", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such collection or tile matrix set", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn tile(
    State(state): State<AppState>,
    Path((id, tms, z, row, col)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let tile = tile_id(tile_matrix_set(&tms)?, &z, &row, &col)?;
    let d = dataset(&state, &id).await?;
    let tag = digest(&[d.name.as_str(), &state_of(&d), &tile.to_string()]);
    let (plain_tag, gzip_tag) = (format!("\"{tag}\""), format!("\"{tag}-gzip\""));
    let gzipped = accepts_gzip(&headers);
    let etag = if gzipped { &gzip_tag } else { &plain_tag };
    let vary = "accept-encoding, authorization";
    if not_modified(&headers, &[&plain_tag, &gzip_tag]) {
        return Ok(with_validators(StatusCode::NOT_MODIFIED.into_response(), etag, &d.updated_at, vary));
    }
    let encoded = match state.tiles.tile(&d.name, tile).await {
        Ok(Some(encoded)) => encoded,
        // Removed since the catalog was read.
        Ok(None) => return Err(Problem::not_found(format!("no collection {id:?}"))),
        Err(e) => return Err(Problem::store("database", e)),
    };
    let bytes = encoded.bytes;
    metrics::counter!("geoflow_tiles_served_total", "empty" => if bytes.is_empty() { "true" } else { "false" })
        .increment(1);
    let omitted = (FEATURES_OMITTED, HeaderValue::from(encoded.omitted));
    if bytes.is_empty() {
        let response = (StatusCode::NO_CONTENT, [omitted]).into_response();
        return Ok(with_validators(response, etag, &d.updated_at, vary));
    }
    let response = if gzipped {
        let body = gzip(&bytes).map_err(|e| Problem::unavailable("compressing the tile", e))?;
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(MVT)),
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                omitted,
            ],
            body,
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static(MVT)), omitted], bytes).into_response()
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
        let wmq = TileMatrixSet::WebMercatorQuad;
        assert_eq!(tile_id(wmq, "3", "0", "7").unwrap(), TileId { tms: wmq, z: 3, row: 0, col: 7 });
        let crs84 = TileMatrixSet::WorldCrs84Quad;
        assert_eq!(tile_id(crs84, "3", "7", "15").unwrap(), TileId { tms: crs84, z: 3, row: 7, col: 15 });
        for (tms, z, row, col, parameter) in [
            (wmq, "30", "0", "0", "tileMatrix"),
            (wmq, "3", "0", "8", "tileCol"),
            (wmq, "3", "8", "0", "tileRow"),
            (crs84, "3", "8", "0", "tileRow"),
            (crs84, "3", "0", "16", "tileCol"),
            (wmq, "a", "0", "0", "tileMatrix"),
            (wmq, "1", "-1", "0", "tileRow"),
            (wmq, "1", "0", "1.5", "tileCol"),
        ] {
            let problem = tile_id(tms, z, row, col).unwrap_err();
            assert_eq!(problem.status(), StatusCode::BAD_REQUEST, "{tms} {z}/{row}/{col}");
            let detail = problem.body().detail;
            assert!(detail.starts_with(parameter), "{tms} {z}/{row}/{col}: {detail}");
        }
        assert_eq!(tile_matrix_set("WebMercatorQuad").unwrap(), wmq);
        assert_eq!(tile_matrix_set("EPSG:4326").unwrap_err().status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn tile_matrix_sets_are_the_registry_definitions() {
        let crs84 = tile_matrix_set_document(TileMatrixSet::WorldCrs84Quad);
        assert_eq!(crs84["tileMatrices"].as_array().unwrap().len(), 24);
        let level0 = &crs84["tileMatrices"][0];
        assert_eq!((level0["matrixWidth"].as_u64(), level0["matrixHeight"].as_u64()), (Some(2), Some(1)));
        assert_eq!(level0["cellSize"], 0.703125);
        assert_eq!(level0["pointOfOrigin"], json!([-180.0, 90.0]));
        assert_eq!(crs84["orderedAxes"], json!(["Lon", "Lat"]));
        let wmq = tile_matrix_set_document(TileMatrixSet::WebMercatorQuad);
        assert_eq!(wmq["tileMatrices"].as_array().unwrap().len(), 25);
        assert_eq!(wmq["tileMatrices"][24]["matrixWidth"], 1u64 << 24);
    }

    #[test]
    fn if_none_match_names_either_encoding() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("W/\"abc-gzip\", \"x\""));
        assert!(not_modified(&h, &["\"abc\"", "\"abc-gzip\""]));
        assert!(!not_modified(&h, &["\"abd\""]));
    }
}
