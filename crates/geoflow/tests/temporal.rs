//! `datetime` on the data: a dataset declares the date or date-time properties that place its
//! features in time, `datetime` filters on them (on the load time until one is declared), and
//! the collection's temporal extent spans them, as GDAL reads it.

mod support;

use std::process::Command;
use std::sync::Arc;

use geoflow::ingest::{ingest, IngestRequest, Input, Progress};
use geoflow_core::dataset::DatasetName;
use serde_json::{json, Value};
use support::app::{assert_problem, reply, spawn_app, with_token, App, TOKEN};

const EVENTS: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"name":"a","observed":"2026-01-01","valid_from":"2026-01-01T10:00:00.000Z","valid_to":"2026-01-05T00:00:00.000Z"},"geometry":{"type":"Point","coordinates":[1,1]}},
{"type":"Feature","properties":{"name":"b","observed":"2026-01-03","valid_from":"2026-01-04T00:00:00.000Z","valid_to":null},"geometry":{"type":"Point","coordinates":[2,2]}},
{"type":"Feature","properties":{"name":"c","observed":null,"valid_from":null,"valid_to":"2026-01-02T00:00:00.000Z"},"geometry":{"type":"Point","coordinates":[3,3]}}
]}"#;

async fn app() -> App {
    let app = spawn_app(with_token()).await;
    let file = app.dir.path().join("events.geojson");
    std::fs::write(&file, EVENTS).unwrap();
    let request = IngestRequest::new(Input::Path(file), DatasetName::new("events").unwrap());
    let summary = ingest(app.store.clone(), request, Arc::new(Progress::default())).await.unwrap();
    assert_eq!(summary.features_loaded, 3, "{summary:?}");
    app
}

async fn patch(app: &App, body: Value) -> support::app::Reply {
    let request = app.http.patch(app.url("/v1/datasets/events")).bearer_auth(TOKEN).json(&body);
    reply(request.send().await.unwrap()).await
}

async fn names(app: &App, datetime: &str) -> Vec<String> {
    let page = app.get(&format!("/collections/events/items?datetime={datetime}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.get("numberMatched").is_none(), "a filtered page");
    page.body["features"].as_array().unwrap().iter().map(|f| f["properties"]["name"].as_str().unwrap().into()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datetime_follows_the_declared_properties_and_the_extent_says_which() {
    let app = app().await;
    // Undeclared: the load time, which is now.
    let collection = app.get("/collections/events").await.body;
    assert_eq!(collection["extent"]["temporal"]["x-geoflow-datetime"], "load time", "{collection}");
    assert_eq!(names(&app, "2000-01-01/2001-01-01").await, Vec::<String>::new());
    assert_eq!(names(&app, "2000-01-01/..").await.len(), 3);

    // A day property: a date stands for its day.
    let r = patch(&app, json!({ "temporal": { "start": "observed" } })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["temporal"], json!({ "start": "observed" }));
    assert_eq!(names(&app, "2026-01-03T12:00:00Z").await, ["b"]);
    assert_eq!(names(&app, "2026-01-01/2026-01-02").await, ["a"]);
    let temporal = &app.get("/collections/events").await.body["extent"]["temporal"];
    assert_eq!(temporal["interval"], json!([["2026-01-01T00:00:00.000Z", "2026-01-04T00:00:00.000Z"]]));
    assert_eq!(temporal["x-geoflow-datetime"], json!({ "start": "observed" }));

    // An interval with open ends.
    let r = patch(&app, json!({ "temporal": { "start": "valid_from", "end": "valid_to" } })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&app, "2026-01-03T00:00:00Z").await, ["a"]);
    assert_eq!(names(&app, "../2026-01-01T10:00:00Z").await, ["a", "c"]);
    assert_eq!(names(&app, "2027-01-01/..").await, ["b"]);
    let temporal = &app.get("/collections/events").await.body["extent"]["temporal"];
    assert_eq!(temporal["interval"], json!([[null, null]]), "both ends left open by some feature");

    // GDAL reads the extent in time from the collection.
    if support::have_tool("ogrinfo") {
        patch(&app, json!({ "temporal": { "start": "observed" } })).await;
        let out = Command::new("ogrinfo").args(["-so", &format!("OAPIF:{}", app.url("/")), "events"]).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("TEMPORAL_INTERVAL_MIN=2026-01-01T00:00:00.000Z"), "{said}");
        assert!(said.contains("TEMPORAL_INTERVAL_MAX=2026-01-04T00:00:00.000Z"), "{said}");
    }

    // Declarations that cannot be: 400, naming the reason; null goes back to the load time.
    for bad in [
        json!({ "temporal": { "start": "name" } }),
        json!({ "temporal": { "start": "nope" } }),
        json!({ "temporal": { "start": "observed", "end": "observed" } }),
        json!({ "temporal": { "begin": "observed" } }),
        json!({ "temporal": "observed" }),
    ] {
        let r = patch(&app, bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = patch(&app, json!({ "temporal": null })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("temporal").is_none(), "{}", r.body);
    assert_eq!(names(&app, "2026-01-03T12:00:00Z").await, Vec::<String>::new());

    // Changing it takes a token, as any change does.
    let r =
        reply(app.http.patch(app.url("/v1/datasets/events")).json(&json!({ "temporal": null })).send().await.unwrap())
            .await;
    assert_problem(&r, 401, "unauthorized");
}
