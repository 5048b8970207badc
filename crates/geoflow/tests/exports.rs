//! Feature pages as CSV and GeoJSON Text Sequences, read back by GDAL: the same features, ids,
//! property values and geometries as the GeoJSON page, whichever way the format is asked for.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use geoflow::api::ApiConfig;
use geoflow::ingest::{ingest, IngestRequest, Input, Progress};
use geoflow_core::dataset::DatasetName;
use serde_json::Value;
use support::app::{assert_problem, reply, spawn_app, App};

/// Awkward values: separators, quotes and line breaks in text, a 64-bit integer, nested JSON,
/// nulls, and a feature without geometry.
const AWKWARD: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"name":"Lisboa, \"a capital\"","pop":5000000000,"share":0.25,"ok":true,"tags":{"a":[1,2]},"note":"two\nlines"},"geometry":{"type":"Point","coordinates":[-9.1393,38.7223]}},
{"type":"Feature","properties":{"name":"Zürich; ⛰","pop":-7,"share":null,"ok":false,"tags":null,"note":null},"geometry":{"type":"Polygon","coordinates":[[[8.5,47.3],[8.6,47.3],[8.6,47.4],[8.5,47.3]]]}},
{"type":"Feature","properties":{"name":"nowhere","pop":0,"share":1.5,"ok":null,"tags":[],"note":""},"geometry":null}
]}"#;

async fn app_with(features: &str) -> App {
    let app = spawn_app(ApiConfig::default()).await;
    let file = app.dir.path().join("places.geojson");
    std::fs::write(&file, features).unwrap();
    let request = IngestRequest::new(Input::Path(file), DatasetName::new("places").unwrap());
    let summary = ingest(app.store.clone(), request, Arc::new(Progress::default())).await.unwrap();
    assert_eq!(summary.features_loaded, summary.features_read, "{summary:?}");
    app
}

/// The body and headers of `path` asked for with `accept`.
async fn fetch(app: &App, path: &str, accept: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = app.http.get(app.url(path)).header("accept", accept).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let headers = response.headers().clone();
    (headers, response.bytes().await.unwrap().to_vec())
}

/// Features as GDAL reads them from a file.
fn gdal_read(path: &Path, open_options: &[&str]) -> Vec<Value> {
    let mut command = Command::new("ogr2ogr");
    command.args(["-f", "GeoJSON", "/vsistdout/"]);
    for option in open_options {
        command.args(["-oo", option]);
    }
    let out = command.arg(path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("ERROR"), "ogr2ogr {}: {err}", path.display());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["features"].as_array().cloned().unwrap_or_default()
}

/// A property value as CSV holds it: strings by their characters, `null` as nothing, anything
/// else as its JSON text.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdal_reads_csv_and_sequences_as_the_geojson_page() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let app = app_with(AWKWARD).await;
    let page = app.get("/collections/places/items?limit=100").await.body;
    let expected = page["features"].as_array().unwrap().clone();
    assert_eq!(expected.len(), 3);

    // GeoJSON Text Sequences, by Accept header: GDAL's GeoJSONSeq driver reads the very features.
    let (headers, body) = fetch(&app, "/collections/places/items?limit=100", "application/geo+json-seq").await;
    assert_eq!(headers["content-type"], "application/geo+json-seq");
    assert_eq!(body.iter().filter(|b| **b == 0x1e).count(), 3, "one record per feature");
    let seq = app.dir.path().join("places.geojsons");
    std::fs::write(&seq, &body).unwrap();
    let records: Vec<Value> =
        body.split(|b| *b == 0x1e).filter(|r| !r.is_empty()).map(|r| serde_json::from_slice(r).unwrap()).collect();
    assert_eq!(records, expected, "the records are the page's features");
    let read = gdal_read(&seq, &[]);
    assert_eq!(read.len(), 3);
    for (got, want) in read.iter().zip(&expected) {
        assert_eq!(got["geometry"], want["geometry"]);
        assert_eq!(got["properties"]["name"], want["properties"]["name"]);
    }

    // CSV, by f=: GDAL takes the WKT column as the geometry.
    let (headers, body) = fetch(&app, "/collections/places/items?limit=100&f=csv", "application/json").await;
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(headers["content-disposition"], "attachment; filename=\"places.csv\"");
    let link = headers["link"].to_str().unwrap();
    assert!(link.contains("rel=\"alternate\"; type=\"application/geo+json\"") && link.contains("f=json"), "{link}");
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.starts_with("WKT,id,name,pop,share,ok,tags,note\r\n"), "{text}");
    let csv = app.dir.path().join("places.csv");
    std::fs::write(&csv, &body).unwrap();
    let read = gdal_read(&csv, &["GEOM_POSSIBLE_NAMES=WKT", "KEEP_GEOM_COLUMNS=NO"]);
    assert_eq!(read.len(), 3);
    for (got, want) in read.iter().zip(&expected) {
        assert_eq!(got["properties"]["id"].as_str(), Some(want["id"].to_string().as_str()), "{got}");
        for (key, value) in want["properties"].as_object().unwrap() {
            // GDAL's GeoJSON writer turns text that is JSON into JSON again.
            assert_eq!(as_text(&got["properties"][key]), as_text(value), "{key} of {want}");
        }
        match &want["geometry"] {
            Value::Null => assert!(got["geometry"].is_null(), "{got}"),
            geometry => assert_eq!(&got["geometry"], geometry),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_pages_follow_limit_offset_properties_and_skip_geometry() {
    let app = app_with(&support::collection(25, 1)).await;
    let (_, body) = fetch(&app, "/collections/places/items?f=csv&limit=5&offset=10&properties=rank", "*/*").await;
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "a header and five rows: {text}");
    assert_eq!(lines[0], "WKT,id,rank");
    let ranks: Vec<&str> = lines[1..].iter().map(|l| l.rsplit(',').next().unwrap()).collect();
    assert_eq!(ranks, ["10", "11", "12", "13", "14"]);

    let (_, body) = fetch(&app, "/collections/places/items?f=csv&limit=2&skipGeometry=true", "*/*").await;
    assert!(String::from_utf8(body).unwrap().starts_with("id,name,rank,note,label\r\n1,f1-0,0,"));

    // The default page size, as for GeoJSON.
    let (_, body) = fetch(&app, "/collections/places/items?f=geojsonseq", "*/*").await;
    assert_eq!(body.iter().filter(|b| **b == 0x1e).count(), 10);

    // Offered by feature pages only.
    let r = reply(app.http.get(app.url("/collections?f=csv")).send().await.unwrap()).await;
    assert_problem(&r, 400, "invalid-parameter");
    // The GeoJSON pages stay what they were for a client asking for JSON.
    let r = app.get("/collections/places/items?limit=1").await;
    assert_eq!(r.content_type, "application/geo+json");
}
