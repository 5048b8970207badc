//! Vector tiles from both stores as a map client fetches them: every tile of zooms 0–4 of
//! WebMercatorQuad and 0–3 of WorldCRS84Quad of the Natural Earth countries holds exactly the
//! features PostGIS's `ST_Intersects` puts in it (those touching only the buffer margin may
//! come too), with their fids and original properties; validators, gzip, empty tiles, bad
//! coordinates, TileJSON, the OGC tileset and tile matrix set documents, private reads, the
//! size budget on a dense dataset and the count of features a thinned tile leaves out; and
//! @camptocamp/ogc-client reading the API as a web map does.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use geoflow::api::ApiConfig;
use geoflow::ingest::{ingest, IngestRequest, Input, Progress};
use geoflow_core::dataset::DatasetName;
use geoflow_core::report::Policy;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::tiles::{BUFFER, MAX_LATITUDE};
use geoflow_store::{Store, TileId, TileMatrixSet};
use geoflow_testkit::postgis_database;
use geozero::mvt::tile::Value as MvtValue;
use geozero::mvt::{Message, Tile};
use serde_json::Value;
use support::app::{assert_problem, spawn_app, spawn_app_on, with_token, App, TOKEN};

const MVT: &str = "application/vnd.mapbox-vector-tile";
const OMITTED: &str = "geoflow-features-omitted";

/// Loads every feature of `file`: the few invalid geometries of Natural Earth are repaired.
async fn load(store: &Arc<dyn Store>, file: &Path, dataset: &str) {
    let mut request = IngestRequest::new(Input::Path(file.to_path_buf()), DatasetName::new(dataset).unwrap());
    request.source = Some(format!("{dataset}.geojson"));
    request.policy = Policy::Repair;
    let summary = ingest(store.clone(), request, Arc::new(Progress::default())).await.unwrap();
    assert!(summary.features_loaded > 0, "{summary:?}");
    assert_eq!(summary.features_loaded, summary.features_read, "{summary:?}");
}

fn countries_file() -> Option<PathBuf> {
    Some(support::shared_dir()?.join("data/naturalearth/ne_110m_admin_0_countries.geojson"))
}

fn populated_places_file() -> Option<PathBuf> {
    Some(support::shared_dir()?.join("data/naturalearth/ne_50m_populated_places.geojson"))
}

/// The count of features a served tile says thinning left out of it.
fn omitted(served: &Served) -> u64 {
    served.headers[OMITTED].to_str().unwrap().parse().unwrap()
}

/// A tile as served: status, headers and the body (gunzipped when it came gzipped).
struct Served {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

async fn fetch(app: &App, path: &str, headers: &[(&str, &str)]) -> Served {
    let mut request = app.http.get(app.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let raw = response.bytes().await.unwrap().to_vec();
    let body = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    };
    Served { status, headers, body }
}

/// A decoded feature: its id and its properties as JSON values.
fn features(bytes: &[u8], layer_name: &str) -> BTreeMap<u64, serde_json::Map<String, Value>> {
    let tile = Tile::decode(bytes).expect("a Mapbox Vector Tile");
    assert_eq!(tile.layers.len(), 1, "one layer");
    let layer = &tile.layers[0];
    assert_eq!(layer.name, layer_name);
    assert_eq!(layer.extent, Some(4096));
    assert_eq!(layer.version, 2);
    let value = |v: &MvtValue| -> Value {
        if let Some(s) = &v.string_value {
            Value::from(s.clone())
        } else if let Some(d) = v.double_value {
            Value::from(d)
        } else if let Some(f) = v.float_value {
            Value::from(f64::from(f))
        } else if let Some(i) = v.int_value.or(v.sint_value) {
            Value::from(i)
        } else if let Some(u) = v.uint_value {
            Value::from(u)
        } else if let Some(b) = v.bool_value {
            Value::from(b)
        } else {
            panic!("a value without a value: {v:?}")
        }
    };
    let mut out = BTreeMap::new();
    for f in &layer.features {
        assert!(!f.geometry.is_empty(), "feature {:?} has a geometry", f.id);
        let mut props = serde_json::Map::new();
        for pair in f.tags.chunks(2) {
            props.insert(layer.keys[pair[0] as usize].clone(), value(&layer.values[pair[1] as usize]));
        }
        let id = f.id.expect("every feature has its fid");
        assert!(out.insert(id, props).is_none(), "fid {id} once per tile");
    }
    out
}

/// The fids in a served tile (none when it is 204).
fn fids(served: &Served, path: &str) -> BTreeSet<u64> {
    match served.status {
        204 => {
            assert!(served.body.is_empty(), "{path}: 204 has no body");
            BTreeSet::new()
        }
        200 => {
            assert_eq!(served.headers["content-type"], MVT, "{path}");
            let found = features(&served.body, "countries");
            assert!(!found.is_empty(), "{path}: a 200 tile holds features");
            found.into_keys().collect()
        }
        other => panic!("{path}: status {other}"),
    }
}

/// Numbers compare by value (a real may come back as an integer); everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tile_to_zoom_4_holds_what_postgis_st_intersects_selects() {
    let (Some(countries), Some(db)) = (countries_file(), postgis_database().await) else { return };
    let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
    load(&store, &countries, "countries").await;
    let on_postgis = spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await;
    let on_gpkg = spawn_app(ApiConfig::default()).await;
    load(&on_gpkg.store, &countries, "countries").await;

    // Both stores number the features alike (the file's order).
    let names = |page: Value| -> BTreeMap<u64, Value> {
        let features = page["features"].as_array().unwrap().clone();
        features.into_iter().map(|f| (f["id"].as_u64().unwrap(), f["properties"]["NAME"].clone())).collect()
    };
    let items = "/collections/countries/items?limit=1000";
    assert_eq!(names(on_postgis.get(items).await.body), names(on_gpkg.get(items).await.body));

    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let table: String =
        client.query_one("SELECT table_name FROM geoflow.datasets WHERE name = 'countries'", &[]).await.unwrap().get(0);
    // The buffer (64 of 4096 pixels) as degrees of longitude, which is at least as many degrees
    // of latitude: the box grown by it on all sides holds the buffered tile. (Not
    // ST_TileEnvelope's margin, which stops at the world's edge and wraps round when
    // transformed.)
    let select = |margin: bool| {
        let envelope = "ST_Transform(ST_TileEnvelope($1, $2, $3), 4326)";
        let envelope =
            if margin { format!("ST_Expand({envelope}, 360.0 / (1 << $1) * 64 / 4096)") } else { envelope.to_string() };
        format!(r#"SELECT fid FROM datasets."{table}" WHERE ST_Intersects(geom, {envelope})"#)
    };
    let (exact, buffered) = (select(false), select(true));
    let (mut tiles, mut empty) = (0, 0);
    for z in 0..=4i32 {
        for x in 0..(1 << z) {
            for y in 0..(1 << z) {
                let query = |sql: String| {
                    let client = &client;
                    async move {
                        let rows = client.query(&sql, &[&z, &x, &y]).await.unwrap();
                        rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect::<BTreeSet<u64>>()
                    }
                };
                let expected = query(exact.clone()).await;
                let allowed = query(buffered.clone()).await;
                let path = format!("/collections/countries/tiles/WebMercatorQuad/{z}/{y}/{x}");
                for (store, app) in [("PostGIS", &on_postgis), ("GeoPackage", &on_gpkg)] {
                    let got = fids(&fetch(app, &path, &[]).await, &path);
                    let missing: Vec<_> = expected.difference(&got).collect();
                    assert!(
                        missing.is_empty(),
                        "{store} {path}: features {missing:?} intersect the tile but are missing"
                    );
                    let extra: Vec<_> = got.difference(&allowed).collect();
                    assert!(extra.is_empty(), "{store} {path}: features {extra:?} are not even in the buffer");
                }
                tiles += 1;
                empty += usize::from(allowed.is_empty());
            }
        }
    }
    assert_eq!(tiles, 1 + 4 + 16 + 64 + 256);
    assert!(empty > 20, "open sea gives empty tiles: {empty}");

    // WorldCRS84Quad: tiles are boxes of degrees, with the buffer as degrees too.
    let in_box = format!(
        r#"SELECT fid FROM datasets."{table}" WHERE ST_Intersects(geom, ST_MakeEnvelope($1, $2, $3, $4, 4326))"#
    );
    let (mut tiles, mut empty) = (0, 0);
    for z in 0..=3u8 {
        for row in 0..(1u32 << z) {
            for col in 0..(2u32 << z) {
                let tile = TileId { tms: TileMatrixSet::WorldCrs84Quad, z, row, col };
                let query = |[w, s, e, n]: [f64; 4]| {
                    let (client, sql) = (&client, &in_box);
                    async move {
                        let rows = client.query(sql.as_str(), &[&w, &s, &e, &n]).await.unwrap();
                        rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect::<BTreeSet<u64>>()
                    }
                };
                let expected = query(tile.bounds_lonlat(0.0)).await;
                let allowed = query(tile.bounds_lonlat(f64::from(BUFFER))).await;
                let path = format!("/collections/countries/tiles/WorldCRS84Quad/{z}/{row}/{col}");
                for (store, app) in [("PostGIS", &on_postgis), ("GeoPackage", &on_gpkg)] {
                    let got = fids(&fetch(app, &path, &[]).await, &path);
                    let missing: Vec<_> = expected.difference(&got).collect();
                    assert!(
                        missing.is_empty(),
                        "{store} {path}: features {missing:?} intersect the tile but are missing"
                    );
                    let extra: Vec<_> = got.difference(&allowed).collect();
                    assert!(extra.is_empty(), "{store} {path}: features {extra:?} are not even in the buffer");
                }
                tiles += 1;
                empty += usize::from(allowed.is_empty());
            }
        }
    }
    assert_eq!(tiles, 2 + 8 + 32 + 128);
    assert!(empty > 10, "open sea gives empty tiles: {empty}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_carry_original_properties_validators_and_gzip_on_both_stores() {
    let Some(countries) = countries_file() else { return };
    let mut apps = vec![("GeoPackage", spawn_app(ApiConfig::default()).await)];
    if let Some(db) = postgis_database().await {
        let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
        apps.push(("PostGIS", spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await));
        std::mem::forget(db); // lives until the process ends, with the app using it
    }
    for (store, app) in &apps {
        load(&app.store, &countries, "countries").await;
        let base = "/collections/countries/tiles/WebMercatorQuad";

        // France, in the tile over western Europe, with every property the features API gives.
        let tile = fetch(app, &format!("{base}/4/5/8"), &[]).await;
        assert_eq!(tile.status, 200, "{store}");
        assert_eq!(tile.headers["content-type"], MVT);
        assert_eq!(tile.headers["cache-control"], "no-cache");
        assert_eq!(omitted(&tile), 0, "{store}: nothing thinned");
        let found = features(&tile.body, "countries");
        let (fid, props) = found.iter().find(|(_, p)| p.get("NAME") == Some(&Value::from("France"))).expect("France");
        let item = app.get(&format!("/collections/countries/items/{fid}")).await;
        let expected = item.body["properties"].as_object().unwrap();
        for (key, value) in expected {
            match (value, props.get(key)) {
                (Value::Null, got) => assert!(got.is_none(), "{store}: null {key} is omitted"),
                (want, Some(got)) => assert!(same(want, got), "{store}: {key}: {want} in the API, {got} in the tile"),
                (want, None) => panic!("{store}: {key} ({want}) is missing from the tile"),
            }
        }
        assert_eq!(props.len(), expected.values().filter(|v| !v.is_null()).count(), "{store}: no other keys");
        assert_eq!(props["ADM0_A3"], "FRA");

        // Validators: 304 for the same tile, whichever encoding the client holds.
        let etag = tile.headers["etag"].to_str().unwrap().to_string();
        assert!(tile.headers.contains_key("last-modified"));
        let again = fetch(app, &format!("{base}/4/5/8"), &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{store}");
        let other = fetch(app, &format!("{base}/4/6/8"), &[("if-none-match", &etag)]).await;
        assert_eq!(other.status, 200, "{store}: another tile has another ETag");

        // gzip when asked for, the same tile inside.
        let zipped = fetch(app, &format!("{base}/4/5/8"), &[("accept-encoding", "gzip")]).await;
        assert_eq!(zipped.status, 200);
        assert_eq!(zipped.headers["content-encoding"], "gzip", "{store}");
        assert_eq!(zipped.body, tile.body);
        assert!(tile.headers.get("content-encoding").is_none());
        let zipped_tag = zipped.headers["etag"].to_str().unwrap().to_string();
        assert_ne!(zipped_tag, etag, "each encoding has its own ETag");
        let again = fetch(app, &format!("{base}/4/5/8"), &[("if-none-match", &zipped_tag)]).await;
        assert_eq!(again.status, 304);

        // The same on WorldCRS84Quad: France is in the tile of 45° to 0° west, 45° to 90° north,
        // with the same properties; the tile has an ETag of its own.
        let crs84 = fetch(app, "/collections/countries/tiles/WorldCRS84Quad/2/0/3", &[]).await;
        assert_eq!(crs84.status, 200, "{store}");
        assert_eq!(omitted(&crs84), 0);
        let found = features(&crs84.body, "countries");
        assert_eq!(found.get(fid), Some(props), "{store}: France alike on both tile matrix sets");
        assert_ne!(crs84.headers["etag"], tile.headers["etag"]);
        let again = fetch(app, "/collections/countries/tiles/WorldCRS84Quad/2/0/3", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 200, "{store}: another tile matrix set, another ETag");

        // The South Pacific: no feature, 204.
        let sea = fetch(app, &format!("{base}/4/9/2"), &[]).await;
        assert_eq!(sea.status, 204, "{store}");
        assert!(sea.body.is_empty());
        assert!(sea.headers.contains_key("etag"));
        let sea = fetch(app, "/collections/countries/tiles/WorldCRS84Quad/3/5/2", &[]).await;
        assert_eq!(sea.status, 204, "{store}");

        // Bad coordinates, unknown collections and tile matrix sets are problems; the detail
        // names the parameter at fault.
        for (path, parameter) in [
            (format!("{base}/30/0/0"), "tileMatrix"),
            (format!("{base}/2/4/0"), "tileRow"),
            (format!("{base}/2/0/4"), "tileCol"),
            (format!("{base}/two/0/0"), "tileMatrix"),
            ("/collections/countries/tiles/WorldCRS84Quad/0/1/0".into(), "tileRow"),
            ("/collections/countries/tiles/WorldCRS84Quad/0/0/2".into(), "tileCol"),
        ] {
            let reply = app.get(&path).await;
            assert_problem(&reply, 400, "invalid-parameter");
            assert!(reply.body["detail"].as_str().unwrap().starts_with(parameter), "{path}: {}", reply.body);
        }
        assert_eq!(app.get("/collections/countries/tiles/WorldCRS84Quad/0/0/1").await.status, 200);
        assert_problem(&app.get("/collections/countries/tiles/EPSG4326/0/0/0").await, 404, "not-found");
        assert_problem(&app.get("/collections/countries/tiles/EPSG4326").await, 404, "not-found");
        assert_problem(&app.get("/tileMatrixSets/EPSG4326").await, 404, "not-found");
        assert_problem(&app.get("/collections/nope/tiles/WebMercatorQuad/0/0/0").await, 404, "not-found");
        assert_problem(&app.get("/collections/nope/tiles/WebMercatorQuad/tilejson.json").await, 404, "not-found");
        assert_problem(&app.get("/collections/nope/tiles").await, 404, "not-found");

        // TileJSON.
        let tilejson = app.get(&format!("{base}/tilejson.json")).await;
        assert_eq!(tilejson.status, 200);
        let tj = &tilejson.body;
        assert_eq!(tj["tilejson"], "3.0.0");
        assert_eq!(tj["name"], "countries");
        assert_eq!(tj["tiles"][0], app.url("/collections/countries/tiles/WebMercatorQuad/{z}/{y}/{x}"));
        assert_eq!((tj["minzoom"].as_u64(), tj["maxzoom"].as_u64()), (Some(0), Some(22)));
        let bounds: Vec<f64> = tj["bounds"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(bounds.len(), 4);
        assert!(bounds[0] <= -179.0 && bounds[2] >= 179.0 && bounds[1] < -60.0 && bounds[3] > 80.0, "{bounds:?}");
        let layer = &tj["vector_layers"][0];
        assert_eq!(layer["id"], "countries");
        assert_eq!(layer["fields"]["NAME"], "String");
        assert_eq!(layer["fields"]["POP_EST"], "Number");
        // The template works as a client fills it.
        let filled = tj["tiles"][0].as_str().unwrap().replace("{z}", "4").replace("{x}", "8").replace("{y}", "5");
        assert_eq!(fetch(app, &filled.replace(&app.url(""), ""), &[]).await.body, tile.body, "the same tile");

        // OGC API – Tiles: the collection links to its tilesets, they to the template and TileJSON.
        let collection = app.get("/collections/countries").await;
        let rel = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector";
        let link =
            collection.body["links"].as_array().unwrap().iter().find(|l| l["rel"] == rel).expect("tilesets link");
        assert_eq!(link["href"], app.url("/collections/countries/tiles"));
        let sets = app.get("/collections/countries/tiles").await;
        assert_eq!(sets.status, 200);
        let sets = sets.body["tilesets"].as_array().unwrap().clone();
        let uris: Vec<&str> = sets.iter().map(|s| s["tileMatrixSetURI"].as_str().unwrap()).collect();
        assert_eq!(
            uris,
            [
                "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
                "http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad"
            ]
        );
        for (set, (tms, crs, path)) in sets.iter().zip([
            ("WebMercatorQuad", "http://www.opengis.net/def/crs/EPSG/0/3857", "4/5/8"),
            ("WorldCRS84Quad", "http://www.opengis.net/def/crs/OGC/1.3/CRS84", "2/0/3"),
        ]) {
            assert_eq!((&set["dataType"], &set["crs"]), (&Value::from("vector"), &Value::from(crs)));
            let link_of = |links: &Value, rel: &str| -> Value {
                links.as_array().unwrap().iter().find(|l| l["rel"] == rel).cloned().unwrap_or(Value::Null)
            };
            let tileset = app.http.get(link_of(&set["links"], "self")["href"].as_str().unwrap()).send().await.unwrap();
            assert_eq!(tileset.status(), 200);
            let tileset: Value = tileset.json().await.unwrap();
            let item = link_of(&tileset["links"], "item");
            assert_eq!(item["type"], MVT);
            let [z, row, col]: [&str; 3] = path.split('/').collect::<Vec<_>>().try_into().unwrap();
            let filled = item["href"].as_str().unwrap().replace("{tileMatrix}", z).replace("{tileRow}", row);
            let filled = filled.replace("{tileCol}", col);
            assert_eq!(filled, app.url(&format!("/collections/countries/tiles/{tms}/{path}")));
            let scheme = link_of(&tileset["links"], "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme");
            assert_eq!(scheme["href"], app.url(&format!("/tileMatrixSets/{tms}")));
            let definition = app.get(&format!("/tileMatrixSets/{tms}")).await.body;
            assert_eq!(definition["id"], tms);
            assert_eq!(definition["uri"], set["tileMatrixSetURI"]);
            let described = link_of(&tileset["links"], "describedby");
            if tms == "WebMercatorQuad" {
                assert_eq!(described["href"], app.url(&format!("{base}/tilejson.json")));
            } else {
                assert!(described.is_null(), "TileJSON is for WebMercatorQuad only");
            }
            assert_eq!(tileset["layers"][0]["id"], "countries");
            let limits = tileset["tileMatrixSetLimits"].as_array().unwrap();
            assert_eq!(limits.len(), 23);
            let deepest = &limits[22];
            let cols = if tms == "WebMercatorQuad" { 1u64 << 22 } else { 1u64 << 23 };
            assert_eq!(
                (deepest["maxTileRow"].as_u64(), deepest["maxTileCol"].as_u64()),
                (Some((1 << 22) - 1), Some(cols - 1))
            );
        }

        // The conformance declaration names what is served, and the landing page links the
        // tile matrix sets.
        let conformance = app.get("/conformance").await.body;
        let classes: Vec<&str> =
            conformance["conformsTo"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for class in [
            "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
            "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
            "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
            "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
            "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
            "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/oas30",
            "http://www.opengis.net/spec/tms/2.0/conf/tilematrixset",
            "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
        ] {
            assert!(classes.contains(&class), "{class} in {classes:?}");
        }
        let landing = app.get("/").await.body;
        let schemes = landing["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes");
        assert_eq!(schemes.unwrap()["href"], app.url("/tileMatrixSets"));
        let listed = app.get("/tileMatrixSets").await.body;
        let ids: Vec<&str> =
            listed["tileMatrixSets"].as_array().unwrap().iter().filter_map(|t| t["id"].as_str()).collect();
        assert_eq!(ids, ["WebMercatorQuad", "WorldCRS84Quad"]);

        // The routes are in the API definition.
        let openapi = app.get("/openapi.json").await.body;
        for path in [
            "/tileMatrixSets",
            "/tileMatrixSets/{tileMatrixSetId}",
            "/collections/{collectionId}/tiles",
            "/collections/{collectionId}/tiles/{tileMatrixSetId}",
            "/collections/{collectionId}/tiles/WebMercatorQuad/tilejson.json",
            "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}",
        ] {
            assert!(openapi["paths"].get(path).is_some(), "{path} in /openapi.json");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_reads_cover_tiles() {
    let app = spawn_app(ApiConfig { private_reads: true, ..with_token() }).await;
    let file = app.dir.path().join("a.geojson");
    std::fs::write(&file, support::collection(30, 1)).unwrap();
    load(&app.store, &file, "roads").await;
    for path in [
        "/tileMatrixSets",
        "/tileMatrixSets/WorldCRS84Quad",
        "/collections/roads/tiles",
        "/collections/roads/tiles/WebMercatorQuad",
        "/collections/roads/tiles/WebMercatorQuad/tilejson.json",
        "/collections/roads/tiles/WebMercatorQuad/0/0/0",
        "/collections/roads/tiles/WorldCRS84Quad/0/0/1",
    ] {
        assert_problem(&app.get(path).await, 401, "unauthorized");
        let allowed = app.http.get(app.url(path)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(allowed.status(), 200, "{path}");
    }
    let tile = app.http.get(app.url("/collections/roads/tiles/WebMercatorQuad/0/0/0")).bearer_auth(TOKEN);
    let bytes = tile.send().await.unwrap().bytes().await.unwrap();
    let found = features(&bytes, "roads");
    assert_eq!(found.len(), 30);
    // Keys as loaded, nothing sanitised.
    assert!(found.values().all(|p| p["note"] == "x'; DROP TABLE t; --" && p["label"] == "it's \"quoted\""));
}

/// 200,000 points spread over the world, each with a long text: the zoom-0 tile would be
/// several megabytes whole.
fn dense_points() -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let features: Vec<String> = (0..200_000)
        .map(|i| {
            let (x, y) = (next() * 360.0 - 180.0, next() * 160.0 - 80.0);
            format!(
                r#"{{"type":"Feature","properties":{{"n":{i},"text":"point number {i} of the dense test set"}},"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}"#
            )
        })
        .collect();
    format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(",\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dense_tiles_stay_within_the_size_budget() {
    let mut apps = vec![("GeoPackage", spawn_app(ApiConfig::default()).await)];
    if let Some(db) = postgis_database().await {
        let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
        apps.push(("PostGIS", spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await));
        std::mem::forget(db);
    }
    let text = dense_points();
    for (store, app) in &apps {
        let file = app.dir.path().join("dense.geojson");
        std::fs::write(&file, &text).unwrap();
        load(&app.store, &file, "dense").await;
        for (tms, z, row, col) in [
            (TileMatrixSet::WebMercatorQuad, 0u64, 0u64, 0u64),
            (TileMatrixSet::WebMercatorQuad, 1, 0, 1),
            (TileMatrixSet::WebMercatorQuad, 3, 3, 4),
            (TileMatrixSet::WorldCrs84Quad, 0, 0, 1),
            (TileMatrixSet::WorldCrs84Quad, 2, 1, 5),
        ] {
            let path = format!("/collections/dense/tiles/{tms}/{z}/{row}/{col}");
            let tile = fetch(app, &path, &[]).await;
            assert_eq!(tile.status, 200, "{store} {path}");
            assert!(tile.body.len() <= 500 * 1024, "{store} {path}: {} bytes", tile.body.len());
            let found = features(&tile.body, "dense");
            assert!(found.len() > 1000, "{store} {path}: thinned, not emptied: {}", found.len());
            // The tile says how many it left out: every point in the tile is either in it or
            // counted, and nothing beyond the buffer is.
            let id = TileId::new(tms, z, row, col).unwrap();
            let [w, s, e, n] = id.bounds_lonlat(0.0);
            let inside = count_points_in(&text, w, s, e, n) as u64;
            let [w, s, e, n] = id.bounds_lonlat(f64::from(BUFFER));
            let buffered = count_points_in(&text, w - 1e-9, s - 1e-9, e + 1e-9, n + 1e-9) as u64;
            let counted = omitted(&tile) + found.len() as u64;
            assert!((inside..=buffered).contains(&counted), "{store} {path}: {counted} not in {inside}..={buffered}");
        }
        // Deep enough, nothing is dropped: every point of a zoom-8 tile is there.
        let path = "/collections/dense/tiles/WebMercatorQuad/8/100/128";
        let tile = fetch(app, path, &[]).await;
        assert_eq!(omitted(&tile), 0, "{store} {path}");
        let [w, s, e, n] = TileId { tms: TileMatrixSet::WebMercatorQuad, z: 8, row: 100, col: 128 }.bounds_lonlat(0.0);
        let inside = text.matches(r#""coordinates":["#).count();
        assert_eq!(inside, 200_000);
        let expected = count_points_in(&text, w, s, e, n);
        let got = if tile.status == 204 { 0 } else { features(&tile.body, "dense").len() };
        assert!(got >= expected, "{store} {path}: {got} of {expected} points");
    }
}

/// Points of the dense set strictly inside a lon/lat box.
fn count_points_in(text: &str, w: f64, s: f64, e: f64, n: f64) -> usize {
    text.split(r#""coordinates":["#)
        .skip(1)
        .filter(|rest| {
            let coords: Vec<f64> = rest.split(']').next().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
            coords[0] > w && coords[0] < e && coords[1] > s && coords[1] < n
        })
        .count()
}

/// The z0 tile of the Natural Earth populated places (1:50m) is thinned to fit its budget, and
/// says by how many features, on both stores and both tile matrix sets: the features in a tile
/// are those it holds and those it says it left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinned_tiles_say_how_many_features_they_left_out() {
    let Some(places) = populated_places_file() else { return };
    let mut apps = vec![("GeoPackage", spawn_app(ApiConfig::default()).await)];
    if let Some(db) = postgis_database().await {
        let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
        apps.push(("PostGIS", spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await));
        std::mem::forget(db);
    }
    let text = std::fs::read_to_string(&places).unwrap();
    let geojson: Value = serde_json::from_str(&text).unwrap();
    let points: Vec<(f64, f64)> = geojson["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["geometry"]["coordinates"][0].as_f64().unwrap(), f["geometry"]["coordinates"][1].as_f64().unwrap()))
        .collect();
    for (store, app) in &apps {
        load(&app.store, &places, "places").await;
        let total = app.get("/collections/places").await.body["description"].as_str().unwrap().to_string();
        assert!(total.starts_with(&format!("{} features", points.len())), "{store}: {total}");

        let world = fetch(app, "/collections/places/tiles/WebMercatorQuad/0/0/0", &[]).await;
        assert_eq!(world.status, 200, "{store}");
        assert!(world.body.len() <= 500 * 1024, "{store}: {} bytes", world.body.len());
        let held = features(&world.body, "places").len() as u64;
        let left_out = omitted(&world);
        assert!(left_out > 0 && held > 0, "{store}: the world tile is thinned ({held} held, {left_out} left out)");
        eprintln!("{store}: the world tile holds {held} places and counts {left_out} it left out");
        // Every place but the South Pole, beyond WebMercator's latitudes, is held or counted.
        let on_the_map = points.iter().filter(|(_, y)| y.abs() < MAX_LATITUDE).count() as u64;
        assert_eq!(on_the_map, points.len() as u64 - 1);
        assert_eq!(held + left_out, on_the_map, "{store}: every place on the map is held or counted");

        // Each half of the world on WorldCRS84Quad: the places in it are held or counted,
        // and none beyond its buffer.
        let (mut held_total, mut left_total) = (0, 0);
        for col in 0..2u32 {
            let tile = TileId { tms: TileMatrixSet::WorldCrs84Quad, z: 0, row: 0, col };
            let path = format!("/collections/places/tiles/WorldCRS84Quad/0/0/{col}");
            let served = fetch(app, &path, &[]).await;
            assert_eq!(served.status, 200, "{store} {path}");
            let within = |[w, s, e, n]: [f64; 4]| {
                points.iter().filter(|(x, y)| (w..=e).contains(x) && (s..=n).contains(y)).count() as u64
            };
            let (inside, buffered) = (within(tile.bounds_lonlat(0.0)), within(tile.bounds_lonlat(f64::from(BUFFER))));
            let held = features(&served.body, "places").len() as u64;
            let counted = held + omitted(&served);
            assert!((inside..=buffered).contains(&counted), "{store} {path}: {counted} not in {inside}..={buffered}");
            (held_total, left_total) = (held_total + held, left_total + omitted(&served));
        }
        // Half the places each, they fit their budget whole; each place is in one of them.
        assert_eq!(left_total, 0, "{store}");
        assert!(held_total >= points.len() as u64, "{store}: {held_total} held");
        // Deeper, nothing is left out: a zoom-5 tile over western Europe.
        let europe = fetch(app, "/collections/places/tiles/WebMercatorQuad/5/10/16", &[]).await;
        assert_eq!((europe.status, omitted(&europe)), (200, 0), "{store}");
    }
}

/// @camptocamp/ogc-client, the OGC client of web maps, where it is installed
/// (`GEOFLOW_OGC_CLIENT_DIR` names a folder whose `node_modules` has it): it finds the
/// collections and their vector tiles, reads the features with its default paging
/// (`getCollectionItems`, which sends `offset`) and fetches a tile from the tileset it is given
/// for each tile matrix set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ogc_client_reads_features_and_tiles() {
    let dir = std::env::var("GEOFLOW_OGC_CLIENT_DIR").unwrap_or_else(|_| "/var/tmp/geoflow-ogc-client".into());
    let installed = Path::new(&dir).join("node_modules/@camptocamp/ogc-client/package.json").is_file();
    if !support::have_tool("node") {
        return;
    }
    if !installed {
        assert!(
            std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "GEOFLOW_REQUIRE_TOOLS=1 but @camptocamp/ogc-client is missing under {dir}"
        );
        eprintln!("skipped: @camptocamp/ogc-client is not installed under {dir} (set GEOFLOW_OGC_CLIENT_DIR)");
        return;
    }
    let app = spawn_app(ApiConfig::default()).await;
    let file = app.dir.path().join("a.geojson");
    std::fs::write(&file, support::collection(25, 1)).unwrap();
    load(&app.store, &file, "roads").await;
    let stored = app.get("/collections/roads/items?limit=100").await.body;
    let stored: Vec<Value> = stored["features"].as_array().unwrap().iter().map(|f| f["properties"].clone()).collect();

    // Node 18 and later have fetch; ogc-client resolves from the folder it is installed in.
    let script = r#"
import { OgcApiEndpoint } from '@camptocamp/ogc-client';
const endpoint = new OgcApiEndpoint(process.argv[1]);
const out = {
  hasTiles: await endpoint.hasTiles,
  featureCollections: await endpoint.featureCollections,
  vectorTileCollections: await endpoint.vectorTileCollections,
  tileMatrixSets: await endpoint.tileMatrixSets,
  info: await endpoint.getCollectionInfo('roads'),
  firstPage: (await endpoint.getCollectionItems('roads')).map((f) => f.properties),
  secondPage: (await endpoint.getCollectionItems('roads', 10, 10)).map((f) => f.properties),
  tiles: {},
};
for (const tms of ['WebMercatorQuad', 'WorldCRS84Quad']) {
  const tilesetUrl = await endpoint.getVectorTilesetUrl('roads', tms);
  const tileset = await (await fetch(tilesetUrl)).json();
  const template = tileset.links.find((l) => l.rel === 'item' && l.type === 'application/vnd.mapbox-vector-tile').href;
  const url = template.replace('{tileMatrix}', '0').replace('{tileRow}', '0').replace('{tileCol}', '0');
  const tile = await fetch(url);
  out.tiles[tms] = { tilesetUrl, url, status: tile.status, type: tile.headers.get('content-type'),
                     omitted: tile.headers.get('geoflow-features-omitted'), bytes: (await tile.arrayBuffer()).byteLength };
}
console.log(JSON.stringify(out));
"#;
    let url = app.url("/");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node").current_dir(&dir).args(["--input-type=module", "-e", script, &url]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["hasTiles"], true, "{got}");
    assert_eq!(got["featureCollections"], serde_json::json!(["roads"]));
    assert_eq!(got["vectorTileCollections"], serde_json::json!(["roads"]));
    assert_eq!(got["tileMatrixSets"], serde_json::json!(["WebMercatorQuad", "WorldCRS84Quad"]));
    assert_eq!(got["info"]["supportedTileMatrixSets"], serde_json::json!(["WebMercatorQuad", "WorldCRS84Quad"]));
    assert_eq!(got["info"]["vectorTileFormats"], serde_json::json!([MVT]));
    assert_eq!(got["firstPage"].as_array().unwrap()[..], stored[..10], "the default page is the first ten");
    assert_eq!(got["secondPage"].as_array().unwrap()[..], stored[10..20], "offset pages follow on");
    for tms in ["WebMercatorQuad", "WorldCRS84Quad"] {
        let tile = &got["tiles"][tms];
        assert_eq!(tile["tilesetUrl"], app.url(&format!("/collections/roads/tiles/{tms}")), "{tile}");
        assert_eq!((&tile["status"], &tile["type"]), (&Value::from(200), &Value::from(MVT)), "{tile}");
        assert_eq!(tile["omitted"], "0", "{tile}");
        assert!(tile["bytes"].as_u64().unwrap() > 100, "{tile}");
    }
}
