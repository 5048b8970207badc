//! The OGC API – Features as real clients use it: GDAL's OAPIF driver lists and downloads the
//! Natural Earth datasets and gets back what was loaded; bbox pages select exactly what
//! PostGIS's `ST_Intersects` selects; keyset pages walk 100,000 features without a gap; ETags
//! follow every load; browsers get HTML; OWSLib reads collections and items.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use geoflow::api::ApiConfig;
use geoflow::ingest::{ingest, IngestRequest, Input, Progress};
use geoflow_core::dataset::{DatasetMode, DatasetName};
use geoflow_core::report::Policy;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::Store;
use geoflow_testkit::postgis_database;
use serde_json::{json, Value};
use support::app::{assert_problem, spawn_app, spawn_app_on, with_token, App, TOKEN};

/// Loads every feature of `file`: the few invalid geometries of Natural Earth are repaired.
async fn load(store: &Arc<dyn Store>, file: &Path, dataset: &str, source: &str) {
    let mut request = IngestRequest::new(Input::Path(file.to_path_buf()), DatasetName::new(dataset).unwrap());
    request.source = Some(source.into());
    // Several files make one dataset here.
    request.mode = DatasetMode::Append;
    request.policy = Policy::Repair;
    let summary = ingest(store.clone(), request, Arc::new(Progress::default())).await.unwrap();
    assert!(summary.features_loaded > 0, "{summary:?}");
    assert_eq!(summary.features_loaded, summary.features_read, "{summary:?}");
}

/// `support::collection(features, 1)` loaded as the dataset `dataset` of `app`.
async fn load_collection(app: &App, dataset: &str, features: usize) {
    let name = format!("{dataset}.geojson");
    let file = app.dir.path().join(&name);
    std::fs::write(&file, support::collection(features, 1)).unwrap();
    load(&app.store, &file, dataset, &name).await;
}

/// A Natural Earth file's dataset name: `ne_110m_admin_0_countries`.
fn dataset_of(file: &Path) -> String {
    file.file_stem().unwrap().to_str().unwrap().to_string()
}

fn natural_earth() -> Option<Vec<std::path::PathBuf>> {
    let dir = support::shared_dir()?.join("data/naturalearth");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    Some(files)
}

/// Features as GDAL reads them from `source` (a file or an `OAPIF:` URL): of `layer`, or of
/// its only layer when `layer` is empty.
fn gdal_features(source: &str, layer: &str) -> Vec<Value> {
    let layer = Some(layer).filter(|l| !l.is_empty());
    let out = Command::new("ogr2ogr").args(["-f", "GeoJSON", "/vsistdout/", source]).args(layer).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("ERROR"), "ogr2ogr {source} {layer:?}: {err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["features"].as_array().cloned().unwrap_or_default()
}

/// A property value as comparable text: numbers by value (GDAL may read 3 as 3.0).
fn comparable(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or(n.to_string(), |f| format!("{f}")),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_reads_back_every_natural_earth_dataset() {
    let Some(files) = natural_earth() else { return };
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let app = spawn_app(ApiConfig::default()).await;
    for file in &files {
        load(&app.store, file, &dataset_of(file), "natural-earth.geojson").await;
    }
    let service = format!("OAPIF:http://{}/", app.addr);
    let listing = tokio::task::spawn_blocking({
        let service = service.clone();
        move || Command::new("ogrinfo").args(["-ro", "-q", &service]).output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    for file in &files {
        assert!(text.contains(&dataset_of(file)), "ogrinfo lists {}: {text}", dataset_of(file));
    }

    for file in files {
        let dataset = dataset_of(&file);
        let (service, path) = (service.clone(), file.to_str().unwrap().to_string());
        let (served, source) = tokio::task::spawn_blocking(move || {
            let layer = dataset_of(Path::new(&path));
            (gdal_features(&service, &dataset), gdal_features(&path, &layer))
        })
        .await
        .unwrap();
        assert_eq!(served.len(), source.len(), "{}: every feature comes back", dataset_of(&file));
        for (i, (got, want)) in served.iter().zip(&source).enumerate() {
            let want_props = want["properties"].as_object().unwrap();
            let got_props = got["properties"].as_object().unwrap();
            for (key, value) in want_props {
                let served_value = got_props.get(key).unwrap_or(&Value::Null);
                assert_eq!(
                    comparable(served_value),
                    comparable(value),
                    "{} feature {i} property {key}",
                    dataset_of(&file)
                );
            }
            // A single geometry in a Multi layer comes back as a Multi geometry of one part.
            let (got_type, want_type) = (got["geometry"]["type"].as_str(), want["geometry"]["type"].as_str());
            let promoted = want_type.map(|t| format!("Multi{t}"));
            assert!(
                got_type == want_type || got_type == promoted.as_deref(),
                "{} feature {i}: {got_type:?} for {want_type:?}",
                dataset_of(&file)
            );
        }
    }
}

/// The names of the features in one page of a bbox query.
async fn names_in(app: &App, dataset: &str, bbox: &str) -> BTreeSet<String> {
    let page = app.get(&format!("/collections/{dataset}/items?bbox={bbox}&limit=1000")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body["links"].as_array().unwrap().iter().all(|l| l["rel"] != "next"), "one page holds them all");
    page.body["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["NAME"].as_str().unwrap().to_string())
        .collect()
}

const BOXES: [&str; 6] =
    ["-10,35,30,60", "100,-50,180,0", "170,-60,-170,80", "-180,-90,180,90", "0,0,0.0001,0.0001", "-75,40,-73,41"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bbox_pages_select_what_postgis_st_intersects_selects() {
    let (Some(files), Some(db)) = (natural_earth(), postgis_database().await) else { return };
    let countries = files.iter().find(|f| dataset_of(f) == "ne_110m_admin_0_countries").unwrap();
    let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
    load(&store, countries, "countries", "countries.geojson").await;
    let on_postgis = spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await;
    let on_gpkg = spawn_app(ApiConfig::default()).await;
    load(&on_gpkg.store, countries, "countries", "countries.geojson").await;

    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    for bbox in BOXES {
        let b: Vec<f64> = bbox.split(',').map(|n| n.parse().unwrap()).collect();
        let envelope = if b[0] > b[2] {
            format!(
                "ST_Union(ST_MakeEnvelope({}, {}, 180, {}, 4326), ST_MakeEnvelope(-180, {}, {}, {}, 4326))",
                b[0], b[1], b[3], b[1], b[2], b[3]
            )
        } else {
            format!("ST_MakeEnvelope({}, {}, {}, {}, 4326)", b[0], b[1], b[2], b[3])
        };
        let column = client
            .query_one("SELECT column_name FROM geoflow.columns WHERE dataset = 'countries' AND key = 'NAME'", &[])
            .await
            .unwrap()
            .get::<_, String>(0);
        let sql = format!(r#"SELECT "{column}" FROM datasets.countries WHERE ST_Intersects(geom, {envelope})"#);
        let expected: BTreeSet<String> = client.query(&sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(names_in(&on_postgis, "countries", bbox).await, expected, "PostGIS store, bbox {bbox}");
        assert_eq!(names_in(&on_gpkg, "countries", bbox).await, expected, "GeoPackage store, bbox {bbox}");
    }
}

/// Follows `next` links from the first page; the fids of every page.
async fn walk(app: &App, first: &str) -> (Vec<i64>, usize) {
    let mut fids = Vec::new();
    let mut pages = 0;
    let mut url = app.url(first);
    loop {
        let page: Value = app.http.get(&url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        assert_eq!(page["numberReturned"].as_u64().unwrap() as usize, page["features"].as_array().unwrap().len());
        fids.extend(page["features"].as_array().unwrap().iter().map(|f| f["id"].as_i64().unwrap()));
        match page["links"].as_array().unwrap().iter().find(|l| l["rel"] == "next") {
            Some(next) => url = next["href"].as_str().unwrap().to_string(),
            None => return (fids, pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_pages_walk_100k_features_without_gaps() {
    let mut apps = vec![spawn_app(ApiConfig::default()).await];
    if let Some(db) = postgis_database().await {
        let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
        apps.push(spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await);
        std::mem::forget(db); // lives until the process ends, with the app using it
    }
    for app in &apps {
        let file = app.dir.path().join("points.geojson");
        std::fs::write(&file, support::collection(100_000, 3)).unwrap();
        load(&app.store, &file, "points", "points.geojson").await;
        let first = app.get("/collections/points/items?limit=10000").await;
        assert_eq!(first.body["numberMatched"], 100_000);
        let (fids, pages) = walk(app, "/collections/points/items?limit=10000").await;
        assert_eq!(fids.len(), 100_000);
        assert_eq!(fids.iter().collect::<BTreeSet<_>>().len(), 100_000, "no duplicates");
        assert!(fids.windows(2).all(|w| w[0] < w[1]), "in key order");
        assert_eq!(pages, 10, "ten full pages, and no next link to an empty one");
        // An offset reaches any page; its next link goes on by cursor from where it ended.
        let page = |body: &Value| {
            body["features"].as_array().unwrap().iter().map(|f| f["id"].as_i64().unwrap()).collect::<Vec<_>>()
        };
        let deep = app.get("/collections/points/items?limit=1000&offset=2500").await;
        assert_eq!(page(&deep.body), fids[2500..3500].to_vec());
        let link = |body: &Value, rel: &str| {
            body["links"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["rel"] == rel)
                .map(|l| l["href"].as_str().unwrap().to_string())
        };
        let next = link(&deep.body, "next").unwrap();
        assert!(!next.contains("offset"), "{next}");
        let after: Value = app.http.get(&next).send().await.unwrap().json().await.unwrap();
        assert_eq!(page(&after), fids[3500..4500].to_vec());
        assert!(link(&deep.body, "prev").is_some());
        let last = app.get("/collections/points/items?limit=10000&offset=99990").await;
        assert_eq!((page(&last.body).len(), link(&last.body, "next")), (10, None));
        let past = app.get("/collections/points/items?offset=100000").await;
        assert_eq!((past.status, page(&past.body).len(), link(&past.body, "next")), (200, 0, None));
        assert_problem(&app.get("/collections/points/items?offset=-1").await, 400, "invalid-parameter");
        let too_deep = app.get("/collections/points/items?offset=1000001").await;
        assert_problem(&too_deep, 400, "invalid-parameter");
        assert!(too_deep.body["detail"].as_str().unwrap().contains("next links"), "{}", too_deep.body);
        // Only the properties asked for, and no geometry when told so; filters still apply.
        let slim = app.get("/collections/points/items?limit=3&properties=name,rank&skipGeometry=true&rank=7").await;
        let feature = &slim.body["features"][0];
        assert_eq!(feature["geometry"], Value::Null, "{}", slim.body);
        assert_eq!(feature["properties"], serde_json::json!({ "name": "f3-7", "rank": 7 }), "{}", slim.body);
        let full = app.get("/collections/points/items?limit=10000&bbox=0,0,180,90").await;
        let bare = app.get("/collections/points/items?limit=10000&bbox=0,0,180,90&skipGeometry=true&properties=").await;
        assert_eq!(page(&full.body), page(&bare.body));
        assert!(bare.body["features"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["geometry"].is_null() && f["properties"] == serde_json::json!({})));
        if let Some(next) = link(&bare.body, "next") {
            assert!(next.contains("skipGeometry=true") && next.contains("properties="), "{next}");
        }
        assert_problem(&app.get("/collections/points/items?properties=nope").await, 400, "invalid-parameter");
        assert_problem(&app.get("/collections/points/items?skipGeometry=yes").await, 400, "invalid-parameter");
        // Exactly a page left: no next link to an empty page.
        let exact = app.get("/collections/points/items?limit=500&offset=99500").await;
        assert_eq!((page(&exact.body).len(), link(&exact.body, "next")), (500, None));
        // A filtered walk keeps its filter on every page, whatever the page size.
        let (small, _) = walk(app, "/collections/points/items?limit=500&bbox=0,0,180,90").await;
        let (large, _) = walk(app, "/collections/points/items?limit=10000&bbox=0,0,180,90").await;
        assert!(!small.is_empty() && small.len() < 100_000, "{}", small.len());
        assert_eq!(small, large);
        let filtered = app.get("/collections/points/items?limit=10&bbox=0,0,180,90").await;
        assert!(filtered.body.get("numberMatched").is_none(), "not counted when filtered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_follow_every_load_and_browsers_get_html() {
    let app = spawn_app(with_token()).await;
    load_collection(&app, "roads", 30).await;

    let items = app.http.get(app.url("/collections/roads/items?limit=5&rank=3")).send().await.unwrap();
    assert_eq!(items.headers()["content-type"], "application/geo+json");
    let etag = items.headers()["etag"].clone();
    assert!(items.headers().contains_key("last-modified"));
    let page: Value = items.json().await.unwrap();
    assert_eq!(page["features"].as_array().unwrap().len(), 1, "property filter: {page}");
    assert_eq!(page["features"][0]["properties"]["name"], "f1-3");
    let revalidate =
        || app.http.get(app.url("/collections/roads/items?limit=5&rank=3")).header("if-none-match", &etag).send();
    assert_eq!(revalidate().await.unwrap().status(), 304);

    let file = app.dir.path().join("b.geojson");
    std::fs::write(&file, support::collection(31, 2)).unwrap();
    load(&app.store, &file, "roads", "b.geojson").await;
    let after = revalidate().await.unwrap();
    assert_eq!(after.status(), 200, "a load changes the ETag");
    assert_ne!(after.headers()["etag"], etag);

    // next and prev links walk both ways; the first page has no prev.
    let ids = |page: &Value| {
        page["features"].as_array().unwrap().iter().map(|f| f["id"].as_i64().unwrap()).collect::<Vec<_>>()
    };
    let link_of = |page: &Value, rel: &str| {
        page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == rel)
            .map(|l| l["href"].as_str().unwrap().to_string())
    };
    let first: Value =
        app.http.get(app.url("/collections/roads/items?limit=4")).send().await.unwrap().json().await.unwrap();
    assert!(link_of(&first, "prev").is_none());
    let second: Value = app.http.get(link_of(&first, "next").unwrap()).send().await.unwrap().json().await.unwrap();
    let third: Value = app.http.get(link_of(&second, "next").unwrap()).send().await.unwrap().json().await.unwrap();
    let back: Value = app.http.get(link_of(&third, "prev").unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(ids(&back), ids(&second));
    let front: Value = app.http.get(link_of(&back, "prev").unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(ids(&front), ids(&first));
    assert!(link_of(&front, "prev").is_none(), "back at the start");
    assert_eq!(
        ids(&app.http.get(link_of(&front, "next").unwrap()).send().await.unwrap().json::<Value>().await.unwrap()),
        ids(&second)
    );

    let feature = app.get(&format!("/collections/roads/items/{}", page["features"][0]["id"])).await;
    assert_eq!(feature.status, 200);
    assert_eq!(feature.body["properties"]["name"], "f1-3");
    assert!(feature.body["links"].as_array().unwrap().iter().any(|l| l["rel"] == "collection"));
    let item_url = app.url(&format!("/collections/roads/items/{}", page["features"][0]["id"]));
    let tag = app.http.get(&item_url).send().await.unwrap().headers()["etag"].clone();
    let cached = app.http.get(&item_url).header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(cached.status(), 304, "the feature did not change");
    assert_problem(&app.get("/collections/nowhere/items/1").await, 404, "not-found");
    assert_problem(&app.get("/collections/roads/items/999999999").await, 404, "not-found");
    assert_problem(&app.get("/collections/nowhere/items").await, 404, "not-found");
    assert_problem(&app.get("/collections/roads/items?colour=red").await, 400, "invalid-parameter");
    assert_problem(&app.get("/collections/roads/items?bbox=1,2,3").await, 400, "invalid-parameter");
    assert_problem(&app.get("/collections/roads/items?limit=0").await, 400, "invalid-parameter");
    let capped = app.get("/collections/roads/items?limit=1000000").await;
    assert_eq!(capped.status, 200);

    let html =
        app.http.get(app.url("/collections/roads/items")).header("accept", "text/html,*/*;q=0.8").send().await.unwrap();
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.text().await.unwrap().contains("f1-0"));
    let landing = app.get("/").await;
    let rels: Vec<&str> =
        landing.body["links"].as_array().unwrap().iter().map(|l| l["rel"].as_str().unwrap()).collect();
    for rel in ["self", "service-desc", "conformance", "data"] {
        assert!(rels.contains(&rel), "{rels:?}");
    }
    let oas30 = app.get("/openapi-3.0.json").await;
    assert_eq!(oas30.body["openapi"], "3.0.3");
    assert!(oas30.body["paths"]["/collections/{collectionId}/items"].is_object());
    fn type_arrays(v: &Value) -> usize {
        match v {
            Value::Object(m) => m.iter().map(|(k, v)| usize::from(k == "type" && v.is_array()) + type_arrays(v)).sum(),
            Value::Array(a) => a.iter().map(type_arrays).sum(),
            _ => 0,
        }
    }
    assert_eq!(type_arrays(&oas30.body), 0, "3.1 type arrays (nullable types) are gone");
    assert!(type_arrays(&app.get("/openapi.json").await.body) > 0, "the 3.1 document has them");
    let schema = app.http.get(app.url("/collections/roads/schema")).send().await.unwrap();
    assert_eq!(schema.headers()["content-type"], "application/schema+json");
    let schema: Value = schema.json().await.unwrap();
    assert_eq!(schema["properties"]["properties"]["properties"]["rank"]["type"], "integer");
    assert_eq!(schema["properties"]["properties"]["properties"]["name"]["type"], "string");
    let conformance = app.get("/conformance").await;
    assert!(conformance.body["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c.as_str().unwrap().ends_with("/conf/geojson")));
    let collections = app.get("/collections").await;
    let roads = &collections.body["collections"][0];
    assert_eq!(roads["id"], "roads");
    assert_eq!(roads["extent"]["spatial"]["bbox"][0].as_array().unwrap().len(), 4);

    let private = spawn_app(ApiConfig { private_reads: true, ..with_token() }).await;
    assert_problem(&private.get("/collections").await, 401, "unauthorized");
    let allowed = private.http.get(private.url("/collections")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
}

/// OWSLib, the Python OGC client, where it is installed (`GEOFLOW_OWSLIB_PYTHON` names a
/// Python that has it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owslib_reads_collections_and_items() {
    let Some(python) = owslib_python() else { return };
    let app = spawn_app(ApiConfig::default()).await;
    load_collection(&app, "roads", 25).await;
    let script = r#"
import sys
from owslib.ogcapi.features import Features
api = Features(sys.argv[1])
ids = [c["id"] for c in api.collections()["collections"]]
assert ids == ["roads"], ids
page = api.collection_items("roads", limit=7)
assert page["type"] == "FeatureCollection", page
assert len(page["features"]) == 7, len(page["features"])
assert page["numberMatched"] == 25, page
one = api.collection_item("roads", str(page["features"][0]["id"]))
assert one["properties"]["name"] == "f1-0", one
queryables = api.collection_queryables("roads")
assert queryables["properties"]["name"] == {"type": "string"}, queryables
assert queryables["properties"]["rank"]["type"] == "integer", queryables
offset = api.collection_items("roads", limit=5, offset=20)
assert [f["properties"]["name"] for f in offset["features"]] == ["f1-%d" % i for i in range(20, 25)], offset
assert not any(l["rel"] == "next" for l in offset["links"]), offset["links"]
ranked = api.collection_items("roads", limit=4, sortby=("rank", "desc"))
assert [f["properties"]["rank"] for f in ranked["features"]] == [24, 23, 22, 21], ranked
by_name = api.collection_items("roads", limit=3, sortby=("name", "asc"))
assert [f["properties"]["name"] for f in by_name["features"]] == ["f1-0", "f1-1", "f1-10"], by_name
slim = api.collection_items("roads", limit=2, properties="name", skipGeometry="true")
assert [f["properties"] for f in slim["features"]] == [{"name": "f1-0"}, {"name": "f1-1"}], slim
assert all(f["geometry"] is None for f in slim["features"]), slim
print("ok")
"#;
    let url = format!("http://{}/", app.addr);
    let out = tokio::task::spawn_blocking(move || Command::new(&python).args(["-c", script, &url]).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_gives_integers_their_width_and_gdal_keeps_them_without_it() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let app = spawn_app(ApiConfig::default()).await;
    let file = app.dir.path().join("wide.geojson");
    std::fs::write(
        &file,
        r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{"big":5000000000,"small":1},"geometry":{"type":"Point","coordinates":[1,2]}},
        {"type":"Feature","properties":{"big":-5000000001,"small":2},"geometry":{"type":"Point","coordinates":[3,4]}}]}"#,
    )
    .unwrap();
    load(&app.store, &file, "wide", "wide.geojson").await;
    let schema = app.get("/collections/wide/schema").await.body;
    for key in ["big", "small"] {
        let property = &schema["properties"]["properties"]["properties"][key];
        assert_eq!(
            (&property["type"], &property["format"]),
            (&Value::from("integer"), &Value::from("int64")),
            "{schema}"
        );
    }
    // GDAL 3.6 reads every JSON Schema integer as 32-bit, whatever its format; told to type the
    // fields from the features instead, it keeps all 64 bits.
    let source = format!("OAPIF:{}", app.url("/"));
    let out = Command::new("ogr2ogr")
        .args(["-f", "GeoJSON", "/vsistdout/", "-oo", "IGNORE_SCHEMA=YES", &source, "wide"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let big: Vec<i64> =
        read["features"].as_array().unwrap().iter().map(|f| f["properties"]["big"].as_i64().unwrap()).collect();
    assert_eq!(big, vec![5_000_000_000, -5_000_000_001]);
}

/// The names of the features GDAL reads through OAPIF with `-where` (and `options`) from 300
/// generated places, and its debug output (the requests it made).
async fn gdal_where(filter: &str, options: &[&str]) -> (Vec<String>, String) {
    let app = spawn_app(ApiConfig::default()).await;
    load_collection(&app, "places", 300).await;
    let source = format!("OAPIF:{}", app.url("/"));
    let out = Command::new("ogr2ogr")
        .args(["-f", "GeoJSON", "/vsistdout/", "-where", filter, &source, "places"])
        .args(options)
        .env("CPL_DEBUG", "ON")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{said}");
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names =
        read["features"].as_array().unwrap().iter().map(|f| f["properties"]["name"].as_str().unwrap().into()).collect();
    (names, said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_sends_equality_filters_on_the_properties_the_api_definition_lists() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let (names, said) = gdal_where("name = 'f1-42'", &[]).await;
    assert_eq!(names, vec!["f1-42"]);
    // The filter went to the server rather than every page to GDAL: as CQL text, now that the
    // API definition lists the language (without it, GDAL sends `name=f1-42`).
    assert!(said.contains("filter=name%20%3D%20'f1-42'&filter-lang=cql-text"), "{said}");
    assert!(!said.contains("evaluated on client side"), "{said}");
    // ILIKE, which is no CQL2, goes to the server as GDAL wrote it.
    let (names, said) = gdal_where("name ILIKE 'F1-4_'", &[]).await;
    assert_eq!(names, (40..50).map(|i| format!("f1-{i}")).collect::<Vec<_>>());
    assert!(said.contains("filter=name%20ILIKE%20'F1-4_'"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_collection_lists_its_queryables_as_the_conformance_declares() {
    let app = spawn_app(ApiConfig::default()).await;
    load_collection(&app, "places", 3).await;
    let conformance = app.get("/conformance").await.body;
    let classes: Vec<&str> =
        conformance["conformsTo"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(classes.contains(&"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables"), "{classes:?}");
    let collection = app.get("/collections/places").await.body;
    let rel = "http://www.opengis.net/def/rel/ogc/1.0/queryables";
    let link = collection["links"].as_array().unwrap().iter().find(|l| l["rel"] == rel).unwrap()["href"].clone();
    let queryables = app.http.get(link.as_str().unwrap()).send().await.unwrap();
    assert_eq!(queryables.headers()["content-type"], "application/schema+json");
    let schema: Value = queryables.json().await.unwrap();
    assert_eq!(schema["properties"]["rank"], serde_json::json!({ "type": "integer", "format": "int64" }), "{schema}");
    assert_eq!(schema["additionalProperties"], false);
    assert_problem(&app.get("/collections/nowhere/queryables").await, 404, "not-found");
}

/// CRSs served by every deployment, and some a configuration adds: a projected one with the
/// northing first (ETRS89-LAEA) and two national grids reached by a datum transformation.
const SERVED: [u32; 5] = [4326, 3857, 32601, 32633, 32760];
const EXTRA: [u32; 3] = [3035, 2056, 27700];

fn crs_uri(code: u32) -> String {
    format!("http://www.opengis.net/def/crs/EPSG/0/{code}")
}

/// pyproj's coordinates for points spread over each CRS's area of use (`served_crs.py`):
/// per CRS, `[lon, lat, first, second]` in the CRS's axis order.
fn crs_reference(codes: &[u32]) -> Option<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/served_crs.py");
    let out = Command::new("/usr/bin/python3").arg(script).args(codes.iter().map(u32::to_string)).output();
    match out {
        Ok(out) if out.status.success() => Some(serde_json::from_slice(&out.stdout).unwrap()),
        other => {
            assert!(
                std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "GEOFLOW_REQUIRE_TOOLS=1 but pyproj cannot run: {other:?}"
            );
            eprintln!("skipped: /usr/bin/python3 with pyproj is not available ({other:?})");
            None
        }
    }
}

/// The reference points as one dataset: each a Point with its CRS (`epsg`) and index (`i`).
fn reference_points(reference: &Value) -> String {
    let mut features = Vec::new();
    for entry in reference["crs"].as_array().unwrap() {
        for (i, p) in entry["points"].as_array().unwrap().iter().enumerate() {
            features.push(json!({
                "type": "Feature",
                "properties": { "epsg": entry["code"], "i": i },
                "geometry": { "type": "Point", "coordinates": [p[0], p[1]] },
            }));
        }
    }
    json!({ "type": "FeatureCollection", "features": features }).to_string()
}

/// Checks served features against pyproj: within a millimetre in a projected CRS, 1e-9° in a
/// geographic one.
fn assert_as_pyproj(what: &str, entry: &Value, features: &[Value]) {
    let points = entry["points"].as_array().unwrap();
    assert_eq!(features.len(), points.len(), "{what}: every point");
    let tolerance = if entry["geographic"].as_bool().unwrap() { 1e-9 } else { 1e-3 };
    for f in features {
        let i = f["properties"]["i"].as_u64().unwrap() as usize;
        let got = f["geometry"]["coordinates"].as_array().unwrap();
        let (a, b) = (got[0].as_f64().unwrap(), got[1].as_f64().unwrap());
        let (want_a, want_b) = (points[i][2].as_f64().unwrap(), points[i][3].as_f64().unwrap());
        assert!(
            (a - want_a).abs() < tolerance && (b - want_b).abs() < tolerance,
            "{what}: point {i} ({}, {}) is ({a}, {b}), pyproj gives ({want_a}, {want_b})",
            points[i][0],
            points[i][1]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_in_every_crs_agree_with_pyproj_on_both_stores() {
    let codes: Vec<u32> = SERVED.iter().chain(&EXTRA).copied().collect();
    let Some(reference) = crs_reference(&codes) else { return };
    let config = || ApiConfig { extra_crs: EXTRA.to_vec(), ..ApiConfig::default() };
    let mut apps = vec![("GeoPackage", spawn_app(config()).await)];
    if let Some(db) = postgis_database().await {
        let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
        apps.push(("PostGIS", spawn_app_on(store, tempfile::tempdir().unwrap(), config()).await));
        std::mem::forget(db); // lives until the process ends, with the app using it
    }
    for (store, app) in &apps {
        let file = app.dir.path().join("points.geojson");
        std::fs::write(&file, reference_points(&reference)).unwrap();
        load(&app.store, &file, "crs_points", "points.geojson").await;
        for entry in reference["crs"].as_array().unwrap() {
            let code = entry["code"].as_u64().unwrap() as u32;
            let uri = crs_uri(code);
            let path = format!("/collections/crs_points/items?epsg={code}&crs={uri}&limit=1000");
            let page = app.get(&path).await;
            assert_eq!(page.status, 200, "{store} EPSG:{code}: {}", page.body);
            assert_eq!(page.headers["content-crs"], format!("<{uri}>").as_str(), "{store}");
            let features = page.body["features"].as_array().unwrap();
            assert_as_pyproj(&format!("{store} EPSG:{code}"), entry, features);
            // One feature, by its id, in the same CRS.
            let id = &features[0]["id"];
            let one = app.get(&format!("/collections/crs_points/items/{id}?crs={uri}")).await;
            assert_eq!(one.status, 200, "{}", one.body);
            assert_eq!(one.headers["content-crs"], format!("<{uri}>").as_str());
            assert_eq!(one.body["geometry"], features[0]["geometry"], "{store} EPSG:{code}");
        }
    }

    // A real client reads a projected page: GDAL's GeoJSON driver, then OWSLib.
    let (_, app) = &apps[0];
    let utm = reference["crs"].as_array().unwrap().iter().find(|e| e["code"] == 32633).unwrap().clone();
    if support::have_tool("ogr2ogr") {
        let url = app.url(&format!("/collections/crs_points/items?epsg=32633&crs={}&limit=1000", crs_uri(32633)));
        let features = tokio::task::spawn_blocking(move || gdal_features(&url, "")).await.unwrap();
        assert_as_pyproj("ogr2ogr, EPSG:32633", &utm, &features);
    }
    if let Some(python) = owslib_python() {
        let script = r#"
import json, sys
from owslib.ogcapi.features import Features
page = Features(sys.argv[1]).collection_items("crs_points", epsg=32633, crs=sys.argv[2], limit=1000)
print(json.dumps(page["features"]))
"#;
        let (url, uri) = (app.url("/"), crs_uri(32633));
        let out = tokio::task::spawn_blocking(move || Command::new(python).args(["-c", script, &url, &uri]).output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let features: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_as_pyproj("OWSLib, EPSG:32633", &utm, &features);
    }
}

/// OWSLib's Python (`GEOFLOW_OWSLIB_PYTHON`), or `None` with the reason printed.
fn owslib_python() -> Option<String> {
    let python = std::env::var("GEOFLOW_OWSLIB_PYTHON").unwrap_or_else(|_| "/var/tmp/geoflow-owslib/bin/python".into());
    let usable = Command::new(&python).args(["-c", "import owslib"]).status().is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var("GEOFLOW_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "GEOFLOW_REQUIRE_TOOLS=1 but OWSLib is missing at {python}"
        );
        eprintln!("skipped: OWSLib is not installed at {python} (set GEOFLOW_OWSLIB_PYTHON)");
        return None;
    }
    Some(python)
}

/// The `id`s of a page's features.
fn ids(page: &Value) -> Vec<i64> {
    page["features"].as_array().unwrap().iter().map(|f| f["id"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_list_their_crs_and_requests_choose_one_for_features_and_boxes() {
    let app = spawn_app(ApiConfig { extra_crs: vec![2056], ..ApiConfig::default() }).await;
    load_collection(&app, "roads", 40).await;
    let crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

    let conformance = app.get("/conformance").await;
    let classes = conformance.body["conformsTo"].as_array().unwrap();
    assert!(classes.contains(&json!("http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs")));
    // The list once in /collections, each collection referring to it; whole in a collection.
    let collections = app.get("/collections").await;
    let listed = collections.body["crs"].as_array().unwrap();
    assert_eq!(listed[0], crs84);
    assert_eq!(listed[1], crs_uri(4326));
    assert_eq!(listed.len(), 1 + 2 + 120 + 1, "CRS84, 4326, 3857, the UTM zones and the configured one");
    assert!(listed.contains(&json!(crs_uri(32760))) && listed.contains(&json!(crs_uri(2056))));
    assert_eq!(collections.body["collections"][0]["crs"], json!(["#/crs"]));
    assert_eq!(collections.body["collections"][0]["storageCrs"], crs84);
    let roads = app.get("/collections/roads").await;
    assert_eq!(roads.body["crs"].as_array().unwrap(), listed);

    // CRS84 by default, named by Content-Crs; EPSG:4326 swaps the axes.
    let plain = app.get("/collections/roads/items?limit=5").await;
    assert_eq!(plain.headers["content-crs"], format!("<{crs84}>").as_str());
    let lat_lon = app.get(&format!("/collections/roads/items?limit=5&crs={}", crs_uri(4326))).await;
    assert_eq!(lat_lon.headers["content-crs"], format!("<{}>", crs_uri(4326)).as_str());
    for (a, b) in plain.body["features"].as_array().unwrap().iter().zip(lat_lon.body["features"].as_array().unwrap()) {
        let (a, b) = (&a["geometry"]["coordinates"], &b["geometry"]["coordinates"]);
        assert_eq!((&a[0], &a[1]), (&b[1], &b[0]));
    }
    // Each CRS is a representation of its own; the next page keeps the CRS.
    assert_ne!(plain.headers["etag"], lat_lon.headers["etag"]);
    let next = lat_lon.body["links"].as_array().unwrap().iter().find(|l| l["rel"] == "next").unwrap();
    let next = app.http.get(next["href"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(next.headers()["content-crs"], format!("<{}>", crs_uri(4326)).as_str());
    let one = app.get(&format!("/collections/roads/items/1?crs={}", crs_uri(4326))).await;
    assert_eq!(one.body["geometry"], lat_lon.body["features"][0]["geometry"]);
    let self_link = one.body["links"].as_array().unwrap().iter().find(|l| l["rel"] == "self").unwrap();
    assert!(self_link["href"].as_str().unwrap().contains("crs="), "{self_link}");

    // A box in EPSG:4326 is latitude first; one in UTM selects the features inside it.
    let all = "limit=100&bbox=-180,-90,180,90";
    let west = app.get("/collections/roads/items?limit=100&bbox=-100,-50,0,40").await;
    let swapped = format!("/collections/roads/items?limit=100&bbox=-50,-100,40,0&bbox-crs={}", crs_uri(4326));
    assert_eq!(ids(&app.get(&swapped).await.body), ids(&west.body));
    assert!(!ids(&west.body).is_empty() && ids(&west.body).len() < 40);
    let everything = app.get(&format!("/collections/roads/items?{all}&crs={}", crs_uri(32633))).await;
    let inside: Vec<i64> = everything.body["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let c = &f["geometry"]["coordinates"];
            let (x, y) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
            (-2e6..=3e6).contains(&x) && (0.0..=8e6).contains(&y)
        })
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert!(!inside.is_empty());
    let boxed =
        app.get(&format!("/collections/roads/items?limit=100&bbox=-2e6,0,3e6,8e6&bbox-crs={}", crs_uri(32633))).await;
    assert_eq!(boxed.status, 200, "{}", boxed.body);
    // The box searched covers the one given: every feature inside it, perhaps a few more.
    let found = ids(&boxed.body);
    assert!(inside.iter().all(|id| found.contains(id)), "{inside:?} within {found:?}");

    // What is not served, or not a CRS URI, is the client's error, naming the parameter.
    for (query, name) in [
        (format!("crs={}", crs_uri(27700)), "crs"),
        ("crs=EPSG:4326".to_string(), "crs"),
        (format!("bbox=0,0,1,1&bbox-crs={}", crs_uri(31467)), "bbox-crs"),
        (format!("bbox=1e300,0,2e300,1&bbox-crs={}", crs_uri(32633)), "bbox"),
        (format!("bbox=100,0,50,1&bbox-crs={}", crs_uri(3857)), "bbox"),
    ] {
        let reply = app.get(&format!("/collections/roads/items?{query}")).await;
        assert_problem(&reply, 400, "invalid-parameter");
        assert!(reply.body["detail"].as_str().unwrap().starts_with(&format!("{name}=")), "{query}: {}", reply.body);
    }
    let reply = app.get(&format!("/collections/roads/items/1?crs={}", crs_uri(27700))).await;
    assert_problem(&reply, 400, "invalid-parameter");
}

/// An items request with `params` (URL-encoded here).
async fn items_with(app: &App, dataset: &str, params: &[(&str, &str)]) -> support::app::Reply {
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    app.get(&format!("/collections/{dataset}/items?{}", query.join("&"))).await
}

fn names_of(page: &Value) -> Vec<String> {
    page["features"].as_array().unwrap().iter().map(|f| f["properties"]["name"].as_str().unwrap().to_string()).collect()
}

/// The apps to run a test on: the GeoPackage store, and PostGIS where a cluster can start.
async fn both_stores() -> Vec<(&'static str, App, Option<geoflow_testkit::TestDatabase>)> {
    let mut apps = vec![("GeoPackage", spawn_app(ApiConfig::default()).await, None)];
    if let Some(db) = postgis_database().await {
        let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
        apps.push(("PostGIS", spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await, Some(db)));
    }
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql2_filters_select_the_same_features_on_both_stores_and_next_links_carry_them() {
    for (store, app, _db) in both_stores().await {
        load_collection(&app, "places", 60).await;
        let expected: Vec<String> =
            (10..40).filter(|i| i % 10 == 3 || i % 10 == 7).map(|i| format!("f1-{i}")).collect();
        let text = "rank >= 10 AND rank < 40 AND (name LIKE '%3' OR name LIKE '%7')";
        let json = r#"{"op":"and","args":[{"op":">=","args":[{"property":"rank"},10]},{"op":"<","args":[{"property":"rank"},40]},
            {"op":"or","args":[{"op":"like","args":[{"property":"name"},"%3"]},{"op":"like","args":[{"property":"name"},"%7"]}]}]}"#;
        for (lang, filter) in [("cql2-text", text), ("cql2-json", json)] {
            let first = items_with(&app, "places", &[("filter", filter), ("filter-lang", lang), ("limit", "4")]).await;
            assert_eq!(first.status, 200, "{store} {lang}: {}", first.body);
            assert!(first.body.get("numberMatched").is_none(), "{store}: a filtered page has no count");
            let next = first.body["links"].as_array().unwrap().iter().find(|l| l["rel"] == "next").unwrap();
            let next = next["href"].as_str().unwrap();
            assert!(next.contains("filter=") && next.contains("filter%2Dlang="), "{next}");
            let (fids, pages) = walk(&app, next.strip_prefix(&app.url("")).unwrap()).await;
            let mut names = names_of(&first.body);
            for fid in fids {
                let f = app.get(&format!("/collections/places/items/{fid}")).await.body;
                names.push(f["properties"]["name"].as_str().unwrap().to_string());
            }
            assert_eq!(names, expected, "{store} {lang}");
            assert_eq!(pages, 1, "{store} {lang}: 4 + 2 features");
        }
        // A spatial literal in latitude/longitude order, as EPSG:4326 has it.
        let point = support::collection(60, 1);
        let f5: Value = serde_json::from_str::<Value>(&point).unwrap()["features"][5].clone();
        let [x, y] =
            [f5["geometry"]["coordinates"][0].as_f64().unwrap(), f5["geometry"]["coordinates"][1].as_f64().unwrap()];
        let lat_lon = format!("S_INTERSECTS(geometry, POINT({y} {x}))");
        let crs = "http://www.opengis.net/def/crs/EPSG/0/4326";
        let page = items_with(&app, "places", &[("filter", &lat_lon), ("filter-crs", crs)]).await;
        assert_eq!(names_of(&page.body), ["f1-5"], "{store}: {}", page.body);
        // A box and a polygon in Web Mercator metres around it.
        let (mx, my) = (
            6_378_137.0 * x.to_radians(),
            6_378_137.0 * (std::f64::consts::FRAC_PI_4 + y.to_radians() / 2.0).tan().ln(),
        );
        let mercator = "http://www.opengis.net/def/crs/EPSG/0/3857";
        for literal in [
            format!("S_INTERSECTS(geometry, BBOX({}, {}, {}, {}))", mx - 20e3, my - 20e3, mx + 20e3, my + 20e3),
            format!(
                "S_WITHIN(geometry, POLYGON(({a} {b}, {c} {b}, {c} {d}, {a} {d}, {a} {b})))",
                a = mx - 20e3,
                b = my - 20e3,
                c = mx + 20e3,
                d = my + 20e3
            ),
        ] {
            let page = items_with(&app, "places", &[("filter", &literal), ("filter-crs", mercator)]).await;
            assert_eq!(names_of(&page.body), ["f1-5"], "{store} {literal}: {}", page.body);
        }
        let lon_lat = format!("S_INTERSECTS(geometry, POINT({x} {y}))");
        assert_eq!(names_of(&items_with(&app, "places", &[("filter", &lon_lat)]).await.body), ["f1-5"], "{store}");
        // With the other filters.
        let page =
            items_with(&app, "places", &[("filter", "rank < 30"), ("bbox", "-180,-90,180,90"), ("name", "f1-2")]).await;
        assert_eq!(names_of(&page.body), ["f1-2"], "{store}");

        // Client errors name the parameter and the reason.
        for (params, says) in [
            (vec![("filter", "rank >")], "filter: is not valid cql2-text"),
            (vec![("filter", "nope = 1")], "\"nope\""),
            (vec![("filter", "name > 5")], "compares property \"name\" (strings) with a number"),
            (vec![("filter", "{\"op\":"), ("filter-lang", "cql2-json")], "filter: is not valid cql2-json"),
            (vec![("filter", "rank = 1"), ("filter-lang", "sql")], "filter-lang=\"sql\""),
            (vec![("filter", "rank = 1"), ("filter-crs", "EPSG:3857")], "filter-crs=\"EPSG:3857\""),
            (vec![("filter", "rank = 1"), ("filter-crs", "http://www.opengis.net/def/crs/EPSG/0/2056")], "filter-crs="),
            (vec![("filter", "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))")], "not valid"),
            (vec![("filter", "T_MEETS(rank, TIMESTAMP('2020-01-01T00:00:00Z'))")], "filter:"),
            (vec![("filter", "T_FINISHES(name, INTERVAL('..', '2020-01-01T00:00:00Z'))")], "filter:"),
            (vec![("filter", "name = 'a\u{0}b'")], "NUL character"),
        ] {
            let reply = items_with(&app, "places", &params).await;
            assert_problem(&reply, 400, "invalid-parameter");
            let detail = reply.body["detail"].as_str().unwrap();
            assert!(detail.contains(says), "{store} {params:?}: {detail}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_and_accent_insensitive_filters_select_the_same_features_on_both_stores() {
    const NAMES: [&str; 8] =
        ["École Saint-Étienne", "ecole du Nord", "ÉCOLE ROSE", "Café Zoë", "CAFE", "Straße", "ΟΔΟΣ ΩΜΕΓΑ", "Bäckerei"];
    let features: Vec<Value> = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [i as f64, 1.0]},
                   "properties": {"name": name, "rank": i}})
        })
        .collect();
    let collection = json!({"type": "FeatureCollection", "features": features}).to_string();
    for (store, app, _db) in both_stores().await {
        let file = app.dir.path().join("names.geojson");
        std::fs::write(&file, &collection).unwrap();
        load(&app.store, &file, "names", "names.geojson").await;
        let json_like =
            r#"{"op":"like","args":[{"op":"casei","args":[{"property":"name"}]},{"op":"casei","args":["école%"]}]}"#;
        for (filter, lang, expected) in [
            ("CASEI(name) LIKE CASEI('école%')", "cql2-text", &["École Saint-Étienne", "ÉCOLE ROSE"][..]),
            (json_like, "cql2-json", &["École Saint-Étienne", "ÉCOLE ROSE"]),
            // GDAL sends its case-insensitive LIKE as ILIKE.
            ("name ILIKE 'ÉCOLE%'", "cql-text", &["École Saint-Étienne", "ÉCOLE ROSE"]),
            ("name NOT ILIKE '%e%' AND rank < 7", "cql2-text", &["Café Zoë", "ΟΔΟΣ ΩΜΕΓΑ"]),
            (
                "ACCENTI(CASEI(name)) LIKE ACCENTI(CASEI('ecole%'))",
                "cql2-text",
                &["École Saint-Étienne", "ecole du Nord", "ÉCOLE ROSE"],
            ),
            ("ACCENTI(name) = ACCENTI('Cafe Zoe')", "cql2-text", &["Café Zoë"]),
            ("CASEI(name) = 'cafe'", "cql2-text", &["CAFE"]),
            ("CASEI(name) = 'CAFE'", "cql2-text", &[]),
            ("CASEI(name) IN (CASEI('straße'), CASEI('Cafe'))", "cql2-text", &["CAFE", "Straße"]),
            // Greek capitals lower with a final sigma where a word ends, on either side alike.
            ("CASEI(name) = CASEI('οδοσ ωμεγα')", "cql2-text", &[]),
            ("CASEI(name) = CASEI('ΟΔΟΣ ΩΜΕΓΑ')", "cql2-text", &["ΟΔΟΣ ΩΜΕΓΑ"]),
            ("CASEI('BÄCKEREI') = CASEI(name)", "cql2-text", &["Bäckerei"]),
            (
                "NOT (CASEI(name) < CASEI('d'))",
                "cql2-text",
                &["École Saint-Étienne", "ecole du Nord", "ÉCOLE ROSE", "Straße", "ΟΔΟΣ ΩΜΕΓΑ"],
            ),
        ] {
            let page = items_with(&app, "names", &[("filter", filter), ("filter-lang", lang)]).await;
            assert_eq!(page.status, 200, "{store} {filter}: {}", page.body);
            assert_eq!(names_of(&page.body), expected, "{store} {filter}");
        }
        for (filter, says) in [
            ("CASEI(rank) = 'a'", "CASEI"),
            ("name ILIKE rank", "ILIKE takes a property"),
            ("ILIKE 'a'", "ILIKE takes a property"),
            ("CASEI(name) = CASEI(name)", "rather than of a property and a string"),
            ("CASEI(name) = 3", "rather than of a property and a string"),
        ] {
            let reply = items_with(&app, "names", &[("filter", filter)]).await;
            assert_problem(&reply, 400, "invalid-parameter");
            let detail = reply.body["detail"].as_str().unwrap();
            assert!(detail.contains(says), "{store} {filter}: {detail}");
        }
    }
}

/// Random and malformed filters: a 400 or a page, never a server error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_filters_are_client_errors_never_server_errors() {
    const TOKENS: [&str; 40] = [
        "rank",
        "name",
        "note",
        "geometry",
        "label",
        "nope",
        "=",
        "<>",
        "<",
        ">=",
        "AND",
        "OR",
        "NOT",
        "(",
        ")",
        "'",
        "'a'",
        "''",
        "1",
        "-1e308",
        "1e999",
        "NaN",
        "LIKE",
        "'%\\'",
        "BETWEEN",
        "IN",
        "IS",
        "NULL",
        ",",
        "S_INTERSECTS",
        "S_WITHIN",
        "POINT(1 2)",
        "BBOX(0,0,1,1)",
        "POLYGON((0 0,1 0,1 1,0 0))",
        "TIMESTAMP('2020-01-01T00:00:00Z')",
        "DATE('x')",
        "T_AFTER",
        "INTERVAL('..','..')",
        "true",
        "\0",
    ];
    const JSON: [&str; 12] = [
        "{",
        "}",
        "[",
        "]",
        "\"op\":",
        "\"args\":",
        "\"=\"",
        "{\"property\":\"rank\"}",
        "1",
        ",",
        "\"s_intersects\"",
        "{\"bbox\":[0,0,1,1]}",
    ];
    let mut cases: Vec<(String, &str)> = vec![
        ("(".repeat(10_000), "cql2-text"),
        ("NOT ".repeat(4000) + "rank = 1", "cql2-text"),
        ("[".repeat(10_000), "cql2-json"),
        ("rank = 1 AND ".repeat(999) + "true", "cql2-text"),
        ("rank = 1 AND ".repeat(1200) + "true", "cql2-text"),
        (format!("rank IN ({})", ["1"; 999].join(",")), "cql2-text"),
        ("S_INTERSECTS(geometry, POINT(1e400 2))".into(), "cql2-text"),
        ("S_INTERSECTS(geometry, GEOMETRYCOLLECTION(POINT(1 2), GEOMETRYCOLLECTION(POINT(1 2))))".into(), "cql2-text"),
        ("name LIKE 'a\\\\'".into(), "cql2-text"),
        ("name = '\u{0}'".into(), "cql2-text"),
    ];
    // A fixed seed: the same strings every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..300 {
        let len = 1 + next(8);
        cases.push(((0..len).map(|_| TOKENS[next(TOKENS.len())]).collect::<Vec<_>>().join(" "), "cql2-text"));
        let len = 1 + next(10);
        cases.push(((0..len).map(|_| JSON[next(JSON.len())]).collect::<String>(), "cql2-json"));
    }
    for (store, app, _db) in both_stores().await {
        load_collection(&app, "places", 20).await;
        for (filter, lang) in &cases {
            let reply = items_with(&app, "places", &[("filter", filter), ("filter-lang", lang)]).await;
            let shown: String = filter.chars().take(80).collect();
            assert!(
                reply.status == 200 || reply.status == 400,
                "{store} {lang} {shown:?}: {} {}",
                reply.status,
                reply.body
            );
            if reply.status == 400 {
                assert_problem(&reply, 400, "invalid-parameter");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_sends_where_clauses_to_the_server_as_cql2() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let (names, said) = gdal_where("rank > 250 AND name LIKE 'f1-26%'", &["-oo", "PAGE_SIZE=5"]).await;
    let expected: Vec<String> = (260..270).map(|i| format!("f1-{i}")).collect();
    assert_eq!(names, expected);
    // The whole filter went to the server: two pages of 5 came back, not 300 features.
    assert!(said.contains("filter-lang=cql-text"), "{said}");
    assert!(!said.contains("evaluated on client side"), "{said}");
    let item_requests = said.lines().filter(|l| l.contains("/collections/places/items?")).count();
    assert!(item_requests <= 4, "{item_requests} page requests: {said}");
}

/// The names of the features of `support::collection(300, 1)` whose point lies in the box.
fn places_in(west: f64, south: f64, east: f64, north: f64) -> Vec<String> {
    let doc: Value = serde_json::from_str(&support::collection(300, 1)).unwrap();
    let features = doc["features"].as_array().unwrap().iter();
    let inside = features.filter(|f| {
        let at = &f["geometry"]["coordinates"];
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        (west..=east).contains(&x) && (south..=north).contains(&y)
    });
    inside.map(|f| f["properties"]["name"].as_str().unwrap().to_string()).collect()
}

/// GDAL with its defaults and `-spat` asks the server for the box (`bbox=`), page by page,
/// and gets exactly the features in it, on both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_sends_its_spatial_filter_to_the_server_as_bbox() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let expected = places_in(-60.0, -40.0, 60.0, 40.0);
    assert!(expected.len() > 10, "more than one page of GDAL's 10: {expected:?}");
    for (store, app, _db) in both_stores().await {
        load_collection(&app, "places", 300).await;
        let source = format!("OAPIF:{}", app.url("/"));
        let out = tokio::task::spawn_blocking(move || {
            Command::new("ogr2ogr")
                .args(["-f", "GeoJSON", "/vsistdout/", "-spat", "-60", "-40", "60", "40", &source, "places"])
                .env("CPL_DEBUG", "ON")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{store}: {said}");
        let read: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut names: Vec<String> = read["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["properties"]["name"].as_str().unwrap().into())
            .collect();
        names.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(names, want, "{store}");
        // After the first page, which GDAL reads to open the layer, every page asks for the box.
        let pages: Vec<&str> = said.lines().filter(|l| l.contains("/collections/places/items?")).skip(1).collect();
        assert!(!pages.is_empty() && pages.iter().all(|l| l.contains("bbox=")), "{store}: {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owslib_filters_items_with_cql2_text_and_json() {
    let Some(python) = owslib_python() else { return };
    let app = spawn_app(ApiConfig::default()).await;
    load_collection(&app, "roads", 25).await;
    let script = r#"
import json, sys
from owslib.ogcapi.features import Features
api = Features(sys.argv[1])
page = api.collection_items("roads", filter="rank BETWEEN 3 AND 5 OR name = 'f1-20'")
assert [f["properties"]["name"] for f in page["features"]] == ["f1-3", "f1-4", "f1-5", "f1-20"], page
assert "numberMatched" not in page, page
cql = {"op": "in", "args": [{"property": "rank"}, [1, 24]]}
page = api.collection_items("roads", filter=json.dumps(cql), **{"filter-lang": "cql2-json"})
assert [f["properties"]["name"] for f in page["features"]] == ["f1-1", "f1-24"], page
queryables = api.collection_queryables("roads")
assert queryables["properties"]["geometry"]["x-ogc-role"] == "primary-geometry", queryables
try:
    api.collection_items("roads", filter="rank >")
    raise SystemExit("a bad filter was taken")
except RuntimeError as e:
    assert "400" in str(e) or "filter" in str(e), e
print("ok")
"#;
    let url = format!("http://{}/", app.addr);
    let out = tokio::task::spawn_blocking(move || Command::new(&python).args(["-c", script, &url]).output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// QGIS's python bindings (python3-qgis), where installed.
fn qgis_python() -> Option<&'static str> {
    let python = "/usr/bin/python3";
    let found = Command::new(python)
        .args(["-c", "import qgis.core"])
        .env("QT_QPA_PLATFORM", "offscreen")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        Some(python)
    } else {
        geoflow_testkit::skip("QGIS's python bindings (python3-qgis) are not installed")
    }
}

/// A QGIS layer's subset string selects the right features. QGIS 3.22 evaluates it itself:
/// it sends neither a CQL2 filter nor the equality parameters the API definition lists, and
/// reads every page of the collection (CQL2 came to its OAPIF provider in 3.28).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qgis_layer_subsets_select_the_right_features() {
    let Some(python) = qgis_python() else { return };
    let app = spawn_app(ApiConfig::default()).await;
    load_collection(&app, "places", 30).await;
    for (subset, expected) in [
        ("\"name\" = 'f1-3'", vec!["f1-3"]),
        ("\"rank\" > 26", vec!["f1-27", "f1-28", "f1-29"]),
        ("\"name\" LIKE 'f1-2_' AND \"rank\" < 22", vec!["f1-20", "f1-21"]),
    ] {
        let read = qgis_read(python, &app, "places", &[subset]).await;
        assert_eq!(read["valid"], true, "{read}");
        assert_eq!(read["names"], serde_json::json!(expected), "{subset}: {read}");
        if read["version"].as_str().is_some_and(|v| v.starts_with("3.22.")) {
            let items = read["items"].as_array().unwrap();
            assert!(items.iter().all(|p| !p.as_str().unwrap().contains("filter")), "{read}");
        }
    }
}

/// What `tests/qgis_subset.py` reads of `collection` with `args` (a subset string, then an
/// optional extent).
async fn qgis_read(python: &str, app: &App, collection: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qgis_subset.py");
    let home = tempfile::tempdir().unwrap();
    let (python, url, collection) = (python.to_string(), app.url("/"), collection.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&url, &collection])
            .args(&args)
            .env("QT_QPA_PLATFORM", "offscreen")
            // QGIS writes its settings and caches under the home folder.
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", home.path())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(said.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {said}{}", String::from_utf8_lossy(&out.stderr)))
}

/// A QGIS layer with `restrictToRequestBBOX` asks the server for the extent of each request
/// (`bbox=`) and reads exactly the features in it, on both stores; without it, the whole
/// layer counts its features.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qgis_asks_the_server_for_the_extent_it_requests() {
    let Some(python) = qgis_python() else { return };
    let mut expected = places_in(-60.0, -40.0, 60.0, 40.0);
    expected.sort();
    for (store, app, _db) in both_stores().await {
        load_collection(&app, "places", 300).await;
        let read = qgis_read(python, &app, "places", &["", "-60,-40,60,40"]).await;
        assert_eq!(read["valid"], true, "{store}: {read}");
        let mut names: Vec<String> = serde_json::from_value(read["names"].clone()).unwrap();
        names.sort();
        assert_eq!(names, expected, "{store}: {read}");
        // After the page QGIS reads to open the layer, every page asks for the extent.
        let items = &read["items"].as_array().unwrap()[1..];
        assert!(!items.is_empty() && items.iter().all(|p| p.as_str().unwrap().contains("bbox=")), "{store}: {read}");
        let whole = qgis_read(python, &app, "places", &[""]).await;
        assert_eq!(whole["count"], 300, "{store}: {whole}");
    }
}

/// Features with ties and NULLs in `pop` and `name` (text whose code-point order differs from
/// a locale's), and a nested property.
fn ranked_collection() -> String {
    let names = ["\"b\"", "\"B\"", "\"Zürich\"", "\"éclair\"", "null", "\"a\""];
    let pops = ["3", "null", "10", "3", "-1"];
    let features: Vec<String> = (0..45)
        .map(|i| {
            format!(
                r#"{{"type":"Feature","properties":{{"name":{},"pop":{},"nested":{{"i":{i}}}}},"geometry":{{"type":"Point","coordinates":[{i},1]}}}}"#,
                names[i % names.len()],
                pops[(i / 2) % pops.len()]
            )
        })
        .collect();
    format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(",\n"))
}

/// The features of a page: id, name, pop.
fn ranked_page(body: &Value) -> Vec<(i64, Value, Value)> {
    body["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_i64().unwrap(), f["properties"]["name"].clone(), f["properties"]["pop"].clone()))
        .collect()
}

fn link_of(body: &Value, rel: &str) -> Option<String> {
    body["links"].as_array().unwrap().iter().find(|l| l["rel"] == rel).map(|l| l["href"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorted_pages_walk_forward_and_back_in_the_same_order_on_both_stores() {
    let mut apps = vec![spawn_app(ApiConfig::default()).await];
    if let Some(db) = postgis_database().await {
        let store: Arc<dyn Store> = Arc::new(PostgisStore::connect(db.url()).await.unwrap());
        apps.push(spawn_app_on(store, tempfile::tempdir().unwrap(), ApiConfig::default()).await);
        std::mem::forget(db); // lives until the process ends, with the app using it
    }
    let mut orders = Vec::new();
    for app in &apps {
        let file = app.dir.path().join("ranked.geojson");
        std::fs::write(&file, ranked_collection()).unwrap();
        load(&app.store, &file, "ranked", "ranked.geojson").await;
        let conformance = app.get("/conformance").await.body;
        assert!(conformance["conformsTo"]
            .as_array()
            .unwrap()
            .contains(&Value::from("http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting")));
        let collection = app.get("/collections/ranked").await.body;
        let sortables = link_of(&collection, "http://www.opengis.net/def/rel/ogc/1.0/sortables").unwrap();
        let sortables: Value = app.http.get(&sortables).send().await.unwrap().json().await.unwrap();
        assert_eq!(sortables["properties"]["name"], serde_json::json!({ "type": "string" }), "{sortables}");
        assert_eq!(sortables["properties"]["pop"]["type"], "integer", "{sortables}");
        assert!(sortables["properties"].get("nested").is_none(), "{sortables}");

        let all = ranked_page(&app.get("/collections/ranked/items?limit=100").await.body);
        // The order worked out here: pop descending (NULL first), then name ascending by code
        // point (NULL last), then id.
        let rank = |v: &Value| v.as_i64().map_or(i64::MAX, |p| p);
        let mut expected = all.clone();
        expected.sort_by(|a, b| {
            rank(&b.2)
                .cmp(&rank(&a.2))
                .then_with(|| match (a.1.as_str(), b.1.as_str()) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (x, y) => x.is_none().cmp(&y.is_none()),
                })
                .then(a.0.cmp(&b.0))
        });
        // `+` sent as is arrives as a space: ascending.
        let first = "/collections/ranked/items?limit=4&sortby=-pop,+name";
        let mut walked = Vec::new();
        let mut url = app.url(first);
        let last_page = loop {
            let page: Value = app.http.get(&url).send().await.unwrap().json().await.unwrap();
            walked.extend(ranked_page(&page));
            match link_of(&page, "next") {
                Some(next) => url = next,
                None => break page,
            }
        };
        assert_eq!(walked, expected);
        let mut back = ranked_page(&last_page);
        let mut page = last_page;
        while let Some(prev) = link_of(&page, "prev") {
            assert!(prev.contains("sortby="), "{prev}");
            page = app.http.get(&prev).send().await.unwrap().json().await.unwrap();
            back.splice(0..0, ranked_page(&page));
        }
        assert_eq!(back, expected);
        // An offset page sorts too, and its next link goes on by cursor.
        let deep = app.get("/collections/ranked/items?limit=5&offset=17&sortby=-pop,name").await.body;
        assert_eq!(ranked_page(&deep), expected[17..22]);
        let next: Value = app.http.get(link_of(&deep, "next").unwrap()).send().await.unwrap().json().await.unwrap();
        assert_eq!(ranked_page(&next), expected[22..27]);
        orders.push(walked.iter().map(|f| (f.1.clone(), f.2.clone())).collect::<Vec<_>>());

        // What cannot be sorted by, and cursors that are not this order's, are refused.
        let refused = |path: &'static str, needle: &'static str| async move {
            let reply = app.get(path).await;
            assert_problem(&reply, 400, "invalid-parameter");
            assert!(reply.body["detail"].as_str().unwrap().contains(needle), "{path}: {}", reply.body);
        };
        refused("/collections/ranked/items?sortby=nested", "nested").await;
        refused("/collections/ranked/items?sortby=nope", "nope").await;
        refused("/collections/ranked/items?sortby=pop,-pop", "pop").await;
        refused("/collections/ranked/items?sortby=pop&cursor=7", "cursor").await;
        refused("/collections/ranked/items?sortby=pop&before=eyJzIjoicG9wIn0", "before").await;
        let token = link_of(&deep, "next").unwrap();
        let token = token.split("cursor=").nth(1).unwrap().split('&').next().unwrap().to_string();
        let other = app.get(&format!("/collections/ranked/items?sortby=name&cursor={token}")).await;
        assert_problem(&other, 400, "invalid-parameter");
        let unsorted = app.get(&format!("/collections/ranked/items?cursor={token}")).await;
        assert_problem(&unsorted, 400, "invalid-parameter");
        // Each order is a representation of its own.
        let etag = |path: &'static str| async move { app.get(path).await.headers["etag"].clone() };
        assert_ne!(
            etag("/collections/ranked/items?sortby=name").await,
            etag("/collections/ranked/items?sortby=-name").await
        );
        // HTML pages link on by the same cursors.
        let html_url = app.url("/collections/ranked/items?limit=4&sortby=-pop,name&f=html");
        let html = app.http.get(html_url).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("sortby=%2Dpop%2Cname&amp;f=html&amp;cursor="), "{html}");
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "both stores give the same order");
}
