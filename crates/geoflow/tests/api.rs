//! The HTTP API over real backends — a GeoPackage store, an object folder and the embedded
//! queue — with the worker running beside it, driven over HTTP on a free port; and
//! `geoflow healthcheck` against it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use geoflow::api::ApiConfig;
use geoflow_core::dataset::DatasetName;
use geoflow_store::{JobAction, NewJob};
use serde_json::{json, Value};
use support::app::{assert_problem, reply, spawn_app, spawn_app_with_jobs, with_token, Reply, TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_becomes_a_succeeded_job_and_a_dataset() {
    let app = spawn_app(with_token()).await;
    let up = app
        .upload("/v1/datasets/roads/uploads?name=roads.geojson", "application/geo+json", support::collection(25, 1))
        .await;
    assert_eq!(up.status, 202, "{}", up.body);
    let id = up.body["id"].as_str().unwrap().to_string();
    assert_eq!(up.headers["location"], format!("/v1/jobs/{id}").as_str());
    let key = up.body["source"].as_str().unwrap();
    let today = time::OffsetDateTime::now_utc().date();
    assert_eq!(key, format!("raw/roads/{today}/roads.geojson"));
    assert!(app.dir.path().join("objects").join(key).is_file(), "the body is in object storage");

    let job = app.finished(&id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["result"]["features_loaded"], 25, "{job}");

    let dataset = app.get("/v1/datasets/roads").await;
    assert_eq!(dataset.status, 200, "{}", dataset.body);
    assert_eq!(dataset.body["dataset"]["feature_count"], 25);
    assert_eq!(dataset.body["sources"][0]["source"], key);
    assert_eq!(dataset.body["last_job"]["id"], id.as_str());
    assert!(
        dataset.body["dataset"]["columns"].as_array().unwrap().iter().any(|c| c["key"] == "name"),
        "{}",
        dataset.body
    );
    let list = app.get("/v1/datasets").await;
    assert_eq!(list.body["datasets"][0]["name"], "roads");
    assert_problem(&app.get("/v1/datasets/parks").await, 404, "not-found");

    // Multipart, the way a browser form or `curl -F file=@parks.geojson` sends it.
    let boundary = "geoflow-test-boundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"parks.geojson\"\r\n\
         Content-Type: application/geo+json\r\n\r\n{}\r\n--{boundary}--\r\n",
        support::collection(7, 2)
    );
    let up = app.upload("/v1/datasets/parks/uploads", &format!("multipart/form-data; boundary={boundary}"), form).await;
    assert_eq!(up.status, 202, "{}", up.body);
    assert!(up.body["source"].as_str().unwrap().ends_with("/parks.geojson"), "{}", up.body);
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!((&job["status"], &job["result"]["features_loaded"]), (&Value::from("succeeded"), &Value::from(7)));

    // What happened is in the metrics, labelled by route pattern (never by raw path).
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    let line = |prefix: &str, parts: &[&str]| {
        text.lines().any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
    };
    assert!(
        line("geoflow_http_requests_total", &[r#"route="/v1/datasets/{dataset}/uploads""#, r#"status="202""#]),
        "{text}"
    );
    assert!(line("geoflow_http_request_duration_seconds_bucket", &[r#"route="/v1/jobs/{id}""#]), "{text}");
    assert!(line("geoflow_jobs_total", &[r#"outcome="succeeded""#]), "{text}");
    assert!(line("geoflow_features_loaded_total", &[r#"dataset="parks""#]), "{text}");
    assert!(line("geoflow_load_duration_seconds_bucket", &[]), "{text}");
    assert!(line("geoflow_queue_receive_lag_seconds_bucket", &[]), "{text}");
    assert!(line("geoflow_loads_in_flight", &[]), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_uploads_with_an_idempotency_key_answer_the_first_job() {
    let app = spawn_app(with_token()).await;
    let send = |body: String| {
        let request = app
            .http
            .post(app.url("/v1/datasets/roads/uploads"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/geo+json")
            .header("idempotency-key", "order-42");
        async move { reply(request.body(body).send().await.unwrap()).await }
    };
    let first = send(support::collection(3, 1)).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = send(support::collection(3, 1)).await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    app.finished(first.body["id"].as_str().unwrap()).await;
    let jobs = app.get("/v1/jobs?dataset=roads").await;
    assert_eq!(jobs.body["jobs"].as_array().unwrap().len(), 1, "one upload, one job: {}", jobs.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validation_policy_comes_from_the_query() {
    let app = spawn_app(with_token()).await;
    let bad = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","id":"ok","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}},
        {"type":"Feature","id":"far","properties":{},"geometry":{"type":"Point","coordinates":[500,2]}}]}"#;
    let up = app.upload("/v1/datasets/roads/uploads?on_invalid=reject&name=r.geojson", "application/json", bad).await;
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    let issue = &job["result"]["errors"][0];
    assert_eq!((&issue["index"], &issue["id"]), (&Value::from(1), &Value::from("far")), "{job}");

    let up = app.upload("/v1/datasets/roads/uploads?name=s.geojson", "application/json", bad).await;
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!((&job["status"], &job["result"]["features_loaded"]), (&Value::from("succeeded"), &Value::from(1)));
    assert_problem(
        &app.upload("/v1/datasets/roads/uploads?on_invalid=maybe", "application/json", bad).await,
        400,
        "invalid-parameter",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_policy_comes_from_the_query_and_changes_are_in_the_job_result() {
    let app = spawn_app(with_token()).await;
    let with_pop = |pop: &str| {
        format!(
            r#"{{"type":"FeatureCollection","features":[
            {{"type":"Feature","properties":{{"pop":1}},"geometry":{{"type":"Point","coordinates":[1,2]}}}},
            {{"type":"Feature","properties":{{"pop":{pop}}},"geometry":{{"type":"Point","coordinates":[3,4]}}}}]}}"#
        )
    };
    let up = app.upload("/v1/datasets/towns/uploads?name=a.geojson", "application/json", with_pop("2")).await;
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!(
        job["result"]["schema_changes"],
        serde_json::json!([{"change": "added", "column": "pop", "key": "pop", "to": "integer"}]),
        "{job}"
    );

    let strict = "/v1/datasets/towns/uploads?name=b.geojson&schema_policy=strict";
    let up = app.upload(strict, "application/json", with_pop(r#""many""#)).await;
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "a rejected load is not retried: {job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("feature 1") && error.contains("\"pop\""), "{error}");

    let up = app.upload("/v1/datasets/towns/uploads?name=b.geojson", "application/json", with_pop(r#""many""#)).await;
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!(job["result"]["schema_changes"][0]["change"], "widened", "{job}");
    assert_problem(
        &app.upload("/v1/datasets/towns/uploads?schema_policy=loose", "application/json", with_pop("2")).await,
        400,
        "invalid-parameter",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_geometry_type_comes_from_the_query_and_shows_in_the_dataset_and_its_schema() {
    let app = spawn_app(with_token()).await;
    let points = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{"n":1},"geometry":{"type":"Point","coordinates":[1,2]}},
        {"type":"Feature","properties":{"n":2},"geometry":{"type":"Point","coordinates":[3,4]}}]}"#;
    let up = app.upload("/v1/datasets/stops/uploads?name=a.geojson", "application/json", points.to_string()).await;
    assert_eq!(app.finished(up.body["id"].as_str().unwrap()).await["status"], "succeeded");
    let dataset = app.get("/v1/datasets/stops").await;
    assert_eq!(dataset.body["dataset"]["geometry_type"], "Point", "{}", dataset.body);
    let schema = app.get("/collections/stops/schema").await;
    assert_eq!(schema.body["properties"]["geometry"]["format"], "geometry-point", "{}", schema.body);

    let multi = "/v1/datasets/multistops/uploads?name=a.geojson&geometry_type=promote-multi";
    let up = app.upload(multi, "application/json", points.to_string()).await;
    assert_eq!(app.finished(up.body["id"].as_str().unwrap()).await["status"], "succeeded");
    assert_eq!(app.get("/v1/datasets/multistops").await.body["dataset"]["geometry_type"], "MultiPoint");
    let items = app.get("/collections/multistops/items").await;
    assert_eq!(items.body["features"][0]["geometry"]["type"], "MultiPoint", "{}", items.body);

    assert_problem(
        &app.upload("/v1/datasets/stops/uploads?geometry_type=curve", "application/json", points.to_string()).await,
        400,
        "invalid-parameter",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_token_and_reads_can_be_private() {
    let app = spawn_app(with_token()).await;
    let url = app.url("/v1/datasets/roads/uploads");
    let anonymous = reply(app.http.post(&url).body("{}").send().await.unwrap()).await;
    assert_problem(&anonymous, 401, "unauthorized");
    assert!(anonymous.headers["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let wrong =
        reply(app.http.post(&url).bearer_auth("not-the-token-0123456789").body("{}").send().await.unwrap()).await;
    assert_problem(&wrong, 401, "unauthorized");
    assert!(!wrong.body.to_string().contains("not-the-token"), "tokens are never echoed");
    assert_eq!(app.get("/v1/jobs").await.status, 200, "reads are open by default");

    let private = spawn_app(ApiConfig { private_reads: true, ..with_token() }).await;
    assert_problem(&private.get("/v1/jobs").await, 401, "unauthorized");
    assert_problem(&private.get("/v1/datasets").await, 401, "unauthorized");
    let authorised = private.http.get(private.url("/v1/jobs")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(authorised.status(), 200);
    assert_eq!(private.get("/healthz").await.status, 200, "health stays open for load balancers");
    assert_eq!(private.get("/readyz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_requests_are_problems() {
    let app = spawn_app(ApiConfig { max_upload_bytes: 1000, ..with_token() }).await;
    let big = support::collection(50, 1);
    assert!(big.len() > 1000);
    assert_problem(
        &app.upload("/v1/datasets/roads/uploads", "application/geo+json", big.clone()).await,
        413,
        "payload-too-large",
    );
    // Without a Content-Length the limit is enforced while streaming, and nothing is kept.
    // (Just over the limit, so the client is done writing when the answer comes.)
    let chunks: Vec<Result<String, std::io::Error>> =
        big.as_bytes()[..1200].chunks(100).map(|c| Ok(String::from_utf8(c.to_vec()).unwrap())).collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    assert_problem(
        &app.upload("/v1/datasets/roads/uploads?name=big.geojson", "application/geo+json", streamed).await,
        413,
        "payload-too-large",
    );
    let today = time::OffsetDateTime::now_utc().date();
    assert!(!app.dir.path().join(format!("objects/raw/roads/{today}/big.geojson")).exists(), "no partial object");

    assert_problem(
        &app.upload("/v1/datasets/roads/uploads", "application/x-www-form-urlencoded", "a=1").await,
        415,
        "unsupported-media-type",
    );
    // A format geoflow does not read is named before anything is stored.
    let kml = app.upload("/v1/datasets/roads/uploads", "application/vnd.google-earth.kml+xml", "<kml/>").await;
    assert_problem(&kml, 415, "unsupported-media-type");
    assert!(kml.body["detail"].as_str().unwrap().contains("a KML document"), "{}", kml.body);
    assert_problem(
        &app.upload("/v1/datasets/roads/uploads?source_crs=EPSG:99999", "text/csv", "x,y\n1,2").await,
        400,
        "invalid-parameter",
    );
    assert_problem(
        &app.upload("/v1/datasets/roads/uploads?csv_delimiter=ab", "text/csv", "x,y\n1,2").await,
        400,
        "invalid-parameter",
    );
    assert_problem(
        &app.upload("/v1/datasets/Roads/uploads", "application/geo+json", "{}").await,
        400,
        "invalid-dataset",
    );
    assert_problem(&app.upload("/v1/datasets/roads/uploads", "application/geo+json", "").await, 400, "invalid-body");
    assert_problem(
        &app.upload("/v1/datasets/roads/uploads?name=..", "application/geo+json", "{}").await,
        400,
        "invalid-parameter",
    );
    assert_problem(&app.get("/v1/jobs/nope").await, 404, "not-found");
    assert_problem(&app.get("/v1/jobs?status=done").await, 400, "invalid-parameter");
    assert_problem(&app.get("/v1/jobs?dataset=Bad%20Name").await, 400, "invalid-parameter");
    assert_problem(&app.get("/v1/jobs?before=unknown-cursor").await, 400, "invalid-parameter");
    assert_problem(&app.get("/v1/jobs?since=yesterday").await, 400, "invalid-parameter");
    // What the framework rejects before a handler runs is a problem too.
    assert_problem(&app.get("/v1/jobs?limit=-1").await, 400, "invalid-parameter");
    assert_problem(&app.get("/v1/jobs/%FF").await, 400, "invalid-parameter");
    assert_problem(
        &app.upload("/v1/datasets/roads/uploads?name=%FF%FE", "application/geo+json", "{}").await,
        400,
        "invalid-parameter",
    );
    assert_problem(&app.get("/no/such/route").await, 404, "not-found");
    let put = reply(app.http.put(app.url("/v1/jobs")).send().await.unwrap()).await;
    assert_problem(&put, 405, "method-not-allowed");
    let jobs = app.get("/v1/jobs").await;
    assert_eq!(jobs.body["jobs"].as_array().unwrap().len(), 0, "no rejected upload made a job: {}", jobs.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_at_its_concurrency_limit_answers_503_at_once() {
    let app = spawn_app(ApiConfig { max_concurrent_requests: 1, ..ApiConfig::default() }).await;
    // An upload whose body never completes holds the only permit.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /v1/datasets/roads/uploads HTTP/1.1\r\nHost: x\r\nContent-Type: application/geo+json\r\nContent-Length: 100\r\n\r\n{").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = app.get("/v1/jobs").await;
    assert_problem(&busy, 503, "overloaded");
    assert_eq!(busy.headers["retry-after"], "1");
    assert_eq!(app.get("/healthz").await.status, 200, "health is never turned away");
    drop(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.get("/v1/jobs").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_source_removes_its_object_and_rows() {
    let app = spawn_app(with_token()).await;
    let up = app
        .upload("/v1/datasets/roads/uploads?name=a%20b.geojson", "application/geo+json", support::collection(5, 1))
        .await;
    app.finished(up.body["id"].as_str().unwrap()).await;
    let key = up.body["source"].as_str().unwrap().to_string();
    let encoded = key.replace('/', "%2F").replace(' ', "%20");
    let path = format!("/v1/datasets/roads/sources/{encoded}");

    let anonymous = reply(app.http.delete(app.url(&path)).send().await.unwrap()).await;
    assert_problem(&anonymous, 401, "unauthorized");
    let deleted = reply(app.http.delete(app.url(&path)).bearer_auth(TOKEN).send().await.unwrap()).await;
    assert_eq!(deleted.status, 202, "{}", deleted.body);
    assert_eq!(deleted.body["action"], "remove");
    let job = app.finished(deleted.body["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert!(!app.dir.path().join("objects").join(&key).exists());
    assert_eq!(app.get("/v1/datasets/roads").await.body["dataset"]["feature_count"], 0);
    let again = reply(app.http.delete(app.url(&path)).bearer_auth(TOKEN).send().await.unwrap()).await;
    assert_problem(&again, 404, "not-found");

    // A source loaded from a local file (not from object storage) goes at once.
    let file = app.dir.path().join("local.geojson");
    std::fs::write(&file, support::collection(4, 3)).unwrap();
    let mut request =
        geoflow::ingest::IngestRequest::new(geoflow::ingest::Input::Path(file), DatasetName::new("roads").unwrap());
    request.source = Some("local.geojson".into());
    geoflow::ingest::ingest(app.store.clone(), request, Default::default()).await.unwrap();
    let deleted = reply(
        app.http.delete(app.url("/v1/datasets/roads/sources/local.geojson")).bearer_auth(TOKEN).send().await.unwrap(),
    )
    .await;
    assert_eq!((deleted.status, &deleted.body["status"]), (200, &Value::from("succeeded")), "{}", deleted.body);
    assert_eq!(deleted.body["result"]["removed_rows"], 4);
}

/// Uploads create a dataset in the mode they ask for (replace by default); asking another mode
/// of an existing dataset is a conflict; `PATCH` changes it, and is a write that needs a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_modes_are_set_by_uploads_and_changed_by_patch() {
    let app = spawn_app(with_token()).await;
    let load = |query: String, n: usize, seed: usize| {
        let app = &app;
        async move {
            let up = app.upload(&query, "application/geo+json", support::collection(n, seed)).await;
            assert_eq!(up.status, 202, "{query}: {}", up.body);
            app.finished(up.body["id"].as_str().unwrap()).await
        }
    };
    let dataset = |name: &'static str| {
        let app = &app;
        async move { app.get(&format!("/v1/datasets/{name}")).await.body }
    };

    // Two uploads under different names: the dataset is the newest one.
    assert_eq!(load("/v1/datasets/roads/uploads?name=a.geojson".into(), 5, 1).await["status"], "succeeded");
    assert_eq!(load("/v1/datasets/roads/uploads?name=b.geojson".into(), 3, 2).await["status"], "succeeded");
    let roads = dataset("roads").await;
    assert_eq!((&roads["dataset"]["mode"], &roads["dataset"]["feature_count"]), (&json!("replace"), &json!(3)));
    assert_eq!(roads["sources"].as_array().unwrap().len(), 1, "{roads}");
    // The same file again changes nothing, unless forced.
    let again = load("/v1/datasets/roads/uploads?name=b.geojson".into(), 3, 2).await;
    assert_eq!(again["status"], "skipped-duplicate", "{again}");
    let forced = load("/v1/datasets/roads/uploads?name=b.geojson&force=true".into(), 3, 2).await;
    assert_eq!((&forced["status"], &forced["result"]["replaced_rows"]), (&json!("succeeded"), &json!(3)));

    // Another mode than the dataset's is refused before anything is stored.
    let body = support::collection(1, 3);
    let conflict = app.upload("/v1/datasets/roads/uploads?mode=append", "application/geo+json", body.clone()).await;
    assert_problem(&conflict, 409, "mode-conflict");
    let bad = app.upload("/v1/datasets/roads/uploads?mode=sideways", "application/geo+json", body).await;
    assert_problem(&bad, 400, "invalid-parameter");
    assert_eq!(dataset("roads").await["dataset"]["feature_count"], 3);

    // A dataset created in append mode keeps every file.
    for (name, n) in [("p1", 2), ("p2", 4)] {
        let job = load(format!("/v1/datasets/parks/uploads?name={name}.geojson&mode=append"), n, n).await;
        assert_eq!(job["status"], "succeeded", "{job}");
    }
    let parks = dataset("parks").await;
    assert_eq!((&parks["dataset"]["mode"], &parks["dataset"]["feature_count"]), (&json!("append"), &json!(6)));

    // PATCH changes the mode; the next file follows it.
    let patch = |path: &str, body: &str, token: bool| {
        let request = app.http.patch(app.url(path)).header("content-type", "application/json").body(body.to_string());
        let request = if token { request.bearer_auth(TOKEN) } else { request };
        async move { reply(request.send().await.unwrap()).await }
    };
    assert_problem(&patch("/v1/datasets/parks", r#"{"mode":"replace"}"#, false).await, 401, "unauthorized");
    assert_problem(&patch("/v1/datasets/nosuch", r#"{"mode":"replace"}"#, true).await, 404, "not-found");
    assert_problem(&patch("/v1/datasets/parks", r#"{"mode":"sideways"}"#, true).await, 400, "invalid-body");
    assert_problem(&patch("/v1/datasets/parks", r#"{"colour":"red"}"#, true).await, 400, "invalid-body");
    assert_problem(&patch("/v1/datasets/parks", r#"[null, null]"#, true).await, 400, "invalid-body");
    let changed = patch("/v1/datasets/parks", r#"{"mode":"replace"}"#, true).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!((&changed.body["mode"], &changed.body["feature_count"]), (&json!("replace"), &json!(6)));
    assert_eq!(load("/v1/datasets/parks/uploads?name=p3.geojson".into(), 1, 9).await["status"], "succeeded");
    assert_eq!(dataset("parks").await["dataset"]["feature_count"], 1);

    // Upsert mode keyed by a property: each upload adds new codes and replaces known ones.
    let upsert = |query: &str, codes: std::ops::Range<usize>, name: &str| {
        let (app, query, body) = (&app, query.to_string(), support::coded(codes, name));
        async move {
            let up = app.upload(&query, "application/geo+json", body).await;
            assert_eq!(up.status, 202, "{query}: {}", up.body);
            app.finished(up.body["id"].as_str().unwrap()).await
        }
    };
    let first = upsert("/v1/datasets/meters/uploads?name=m1.geojson&mode=upsert&key=code", 0..5, "one").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let second = upsert("/v1/datasets/meters/uploads?name=m2.geojson", 3..8, "two").await;
    assert_eq!((&second["status"], &second["result"]["replaced_rows"]), (&json!("succeeded"), &json!(2)), "{second}");
    let meters = dataset("meters").await;
    let info = &meters["dataset"];
    assert_eq!(
        (&info["mode"], &info["key_property"], &info["feature_count"]),
        (&json!("upsert"), &json!("code"), &json!(8))
    );
    // Another key than the dataset's is a conflict; a key without upsert mode is refused.
    let body = support::coded(0..1, "x");
    let other_key =
        app.upload("/v1/datasets/meters/uploads?mode=upsert&key=name", "application/geo+json", body.clone()).await;
    assert_problem(&other_key, 409, "mode-conflict");
    let by_id = app.upload("/v1/datasets/meters/uploads?mode=upsert", "application/geo+json", body.clone()).await;
    assert_problem(&by_id, 409, "mode-conflict");
    let stray = app.upload("/v1/datasets/meters/uploads?key=code", "application/geo+json", body).await;
    assert_problem(&stray, 400, "invalid-parameter");
    assert_problem(&patch("/v1/datasets/parks", r#"{"key":"code"}"#, true).await, 400, "invalid-body");
    assert_problem(&patch("/v1/datasets/parks", r#"{"mode":"append","key":"code"}"#, true).await, 400, "invalid-body");
    let keyed = patch("/v1/datasets/parks", r#"{"mode":"upsert","key":"name"}"#, true).await;
    assert_eq!(
        (&keyed.body["mode"], &keyed.body["key_property"]),
        (&json!("upsert"), &json!("name")),
        "{}",
        keyed.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_dataset_removes_its_table_and_catalog_and_optionally_its_objects() {
    let app = spawn_app(with_token()).await;
    let objects = app.dir.path().join("objects");
    let mut keys = Vec::new();
    for (dataset, name, n) in [("roads", "a.geojson", 5), ("roads", "b.geojson", 3), ("parks", "p.geojson", 2)] {
        let up = app
            .upload(
                &format!("/v1/datasets/{dataset}/uploads?name={name}"),
                "application/geo+json",
                support::collection(n, 1),
            )
            .await;
        assert_eq!(app.finished(up.body["id"].as_str().unwrap()).await["status"], "succeeded");
        keys.push(up.body["source"].as_str().unwrap().to_string());
    }
    let delete = |path: &str, token: bool| {
        let request = app.http.delete(app.url(path));
        let request = if token { request.bearer_auth(TOKEN) } else { request };
        async move { reply(request.send().await.unwrap()).await }
    };

    assert_problem(&delete("/v1/datasets/roads", false).await, 401, "unauthorized");
    assert_problem(&delete("/v1/datasets/Bad-Name", true).await, 400, "invalid-dataset");
    assert_problem(&delete("/v1/datasets/nosuch", true).await, 404, "not-found");
    assert_problem(&delete("/v1/datasets/nosuch?objects=true", true).await, 404, "not-found");
    assert_problem(&delete("/v1/datasets/roads?objects=maybe", true).await, 400, "invalid-parameter");
    assert_eq!(app.get("/v1/datasets/roads").await.status, 200, "refused requests change nothing");

    let before = app.http.get(app.url("/collections/roads/items")).send().await.unwrap();
    let old_etag = before.headers()["etag"].to_str().unwrap().to_string();

    // Without objects=true the objects stay in storage.
    let dropped = delete("/v1/datasets/roads", true).await;
    assert_eq!(dropped.status, 204, "{}", dropped.body);
    assert_problem(&app.get("/v1/datasets/roads").await, 404, "not-found");
    assert_problem(&app.get("/collections/roads").await, 404, "not-found");
    assert_problem(&app.get("/collections/roads/items").await, 404, "not-found");
    assert_problem(&app.get("/collections/roads/items/1").await, 404, "not-found");
    let names: Vec<Value> =
        app.get("/v1/datasets").await.body["datasets"].as_array().unwrap().iter().map(|d| d["name"].clone()).collect();
    assert_eq!(names, [Value::from("parks")]);
    assert!(objects.join(&keys[0]).is_file() && objects.join(&keys[1]).is_file());
    assert_problem(&delete("/v1/datasets/roads", true).await, 404, "not-found");
    let jobs = app.get("/v1/jobs?dataset=roads").await;
    let actions: Vec<&str> =
        jobs.body["jobs"].as_array().unwrap().iter().map(|j| j["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["drop", "load", "load"], "the jobs stay in the history, and the drop is one");

    // Its objects are still there: deleting them (the dataset is gone) is a 204, once.
    assert_eq!(delete("/v1/datasets/roads?objects=true", true).await.status, 204);
    assert!(!objects.join(&keys[0]).exists() && !objects.join(&keys[1]).exists());
    assert_problem(&delete("/v1/datasets/roads?objects=true", true).await, 404, "not-found");

    // A later upload creates the dataset anew.
    let up = app
        .upload("/v1/datasets/roads/uploads?name=c.geojson", "application/geo+json", support::collection(4, 2))
        .await;
    assert_eq!(app.finished(up.body["id"].as_str().unwrap()).await["status"], "succeeded");
    let roads = app.get("/v1/datasets/roads").await;
    assert_eq!(
        (roads.body["dataset"]["feature_count"].as_u64(), roads.body["sources"].as_array().map(Vec::len)),
        (Some(4), Some(1))
    );
    assert_eq!(app.get("/collections/roads/items").await.body["features"].as_array().unwrap().len(), 4);
    // At the version the dropped dataset had, a cached copy of it is still not current.
    let up = app
        .upload("/v1/datasets/roads/uploads?name=d.geojson", "application/geo+json", support::collection(1, 3))
        .await;
    assert_eq!(app.finished(up.body["id"].as_str().unwrap()).await["status"], "succeeded");
    assert_eq!(app.get("/v1/datasets/roads").await.body["dataset"]["version"], 2);
    let revalidated =
        app.http.get(app.url("/collections/roads/items")).header("if-none-match", &old_etag).send().await.unwrap();
    assert_eq!(revalidated.status(), 200, "the old dataset's ETag does not match the new one's");

    // With objects=true, the dataset and its objects go together; other datasets stay.
    assert_eq!(delete("/v1/datasets/parks?objects=true", true).await.status, 204);
    assert!(!objects.join(&keys[2]).exists());
    assert_problem(&app.get("/v1/datasets/parks").await, 404, "not-found");
    assert_eq!(app.get("/v1/datasets/roads").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_load_is_a_job_with_its_report() {
    let app = spawn_app(ApiConfig::default()).await;
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sample.geojson");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_geoflow"))
        .args(["ingest", "--dataset", "sample", "--no-progress", "--database"])
        .arg(app.dir.path().join("geoflow.gpkg"))
        .arg(&sample)
        .env("GEOFLOW_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("geoflow jobs show"), "the summary names its job: {stdout}");

    let jobs = app.get("/v1/jobs?dataset=sample").await;
    let listed = jobs.body["jobs"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", jobs.body);
    let job = &listed[0];
    assert_eq!(
        (&job["action"], &job["status"], &job["source"]),
        (&Value::from("load"), &Value::from("succeeded"), &Value::from("sample.geojson"))
    );
    assert!(stdout.contains(job["id"].as_str().unwrap()), "{stdout}");
    let one = app.get(&format!("/v1/jobs/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(one.status, 200);
    let report = &one.body["result"];
    assert_eq!((report["features_read"].as_u64(), report["features_loaded"].as_u64()), (Some(10), Some(8)));
    assert_eq!(report["errors"][0]["id"], "bad-bowtie");
    assert_eq!(app.get("/v1/datasets/sample").await.body["last_job"]["id"], job["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_with_filters_and_cursors() {
    let app = spawn_app(ApiConfig::default()).await;
    for i in 0..5 {
        let job = NewJob {
            id: format!("job-{i}"),
            dataset: DatasetName::new(if i % 2 == 0 { "roads" } else { "parks" }).unwrap(),
            source: format!("raw/x/2026-11-22/{i}.geojson"),
            action: JobAction::Load,
            object_version: None,
        };
        app.store.upsert_job(&job).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let page = app.get("/v1/jobs?limit=2").await;
    let ids = |r: &Reply| {
        r.body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&page), ["job-4", "job-3"]);
    let next = app.get(&format!("/v1/jobs?limit=2&before={}", page.body["next_before"].as_str().unwrap())).await;
    assert_eq!(ids(&next), ["job-2", "job-1"]);
    assert_eq!(ids(&app.get("/v1/jobs?dataset=roads&status=queued").await), ["job-4", "job-2", "job-0"]);
    let created = app.get("/v1/jobs/job-2").await.body["created_at"].as_str().unwrap().to_string();
    let since = app.get(&format!("/v1/jobs?since={}", created.replace('+', "%2B"))).await;
    assert_eq!(ids(&since), ["job-4", "job-3", "job-2"]);
    let until = app.get(&format!("/v1/jobs?until={}", created.replace('+', "%2B"))).await;
    assert_eq!(ids(&until), ["job-1", "job-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app(ApiConfig { cors_origins: vec!["https://maps.example".into()], ..ApiConfig::default() }).await;
    let doc = app.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."), "{}", doc.body["openapi"]);
    for path in [
        "/v1/datasets/{dataset}/uploads",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/datasets",
        "/v1/datasets/{dataset}",
        "/v1/datasets/{dataset}/sources/{source}",
        "/healthz",
        "/readyz",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc.body["paths"]["/v1/datasets/{dataset}"]["get"].is_object(), "reading a dataset is documented");
    assert!(doc.body["paths"]["/v1/datasets/{dataset}"]["delete"]["responses"]["204"].is_object(), "and dropping it");
    assert_eq!(doc.body["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let page = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/openapi.json") && html.contains("/docs/swagger-ui-bundle.js"));
    let script = app.http.get(app.url("/docs/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.bytes().await.unwrap().len() > 100_000);

    // CORS: the configured origin may call the API from a browser; others may not.
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/v1/datasets/roads/uploads"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
    };
    let allowed = preflight("https://maps.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://maps.example");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exits_0_when_ready_and_1_otherwise() {
    let app = spawn_app(ApiConfig::default()).await;
    let (status, body) = {
        let r = app.get("/readyz").await;
        (r.status, r.body)
    };
    assert_eq!((status, &body["status"]), (200, &Value::from("ready")));
    let healthcheck = |listen: String| {
        tokio::task::spawn_blocking(move || {
            support::geoflow().args(["healthcheck", "--listen", &listen]).status().unwrap().code()
        })
    };
    assert_eq!(healthcheck(app.addr.to_string()).await.unwrap(), Some(0));
    // Nothing listens on a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    assert_eq!(healthcheck(free.to_string()).await.unwrap(), Some(1));
}

#[tokio::test]
async fn raw_http_is_answered_with_a_request_id() {
    let app = spawn_app(ApiConfig::default()).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.to_ascii_lowercase().contains("x-request-id: "), "{text}");
}

#[test]
fn version_names_the_release_and_the_revision() {
    let out = support::geoflow().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    let expected = format!("geoflow {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    let revision = version.trim().trim_start_matches(&expected).trim_end_matches(')');
    assert!(revision == "unknown" || revision.chars().all(|c| c.is_ascii_hexdigit()), "{version}");
}

/// Each class of store error is answered by its class: 4xx only for the client's own fault,
/// 503 with `Retry-After` for an unavailable backend, 500 for an internal fault — and never a
/// host, a path or SQL text in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_are_answered_by_their_class() {
    use geoflow_store::memory::MemoryJobs;
    use geoflow_store::{ErrorClass, StoreError};

    let jobs = Arc::new(MemoryJobs::new());
    let app = spawn_app_with_jobs(ApiConfig::default(), jobs.clone()).await;
    let secret = "db.internal.example:5432 /var/lib/geoflow/geoflow.gpkg SELECT id FROM geoflow.jobs";
    let database = |class| StoreError::classified("listing jobs", class, std::io::Error::other(secret));
    let cases = [
        (StoreError::Invalid("the cursor \"x\" names no job".into()), 400, "invalid-parameter"),
        (database(ErrorClass::BadInput), 400, "invalid-parameter"),
        (StoreError::NotFound { what: "job", id: "x".into() }, 404, "not-found"),
        (StoreError::Conflict("taken".into()), 409, "conflict"),
        (database(ErrorClass::Unavailable), 503, "unavailable"),
        (StoreError::Open { location: secret.into(), reason: "connection refused".into() }, 503, "unavailable"),
        (StoreError::Internal(format!("the R-tree in {secret} is damaged")), 500, "internal"),
        (database(ErrorClass::Internal), 500, "internal"),
    ];
    for (error, status, kind) in cases {
        let class = error.class();
        jobs.fail_next(error);
        let reply = app.get("/v1/jobs").await;
        assert_problem(&reply, status, kind);
        let detail = reply.body["detail"].as_str().unwrap();
        for leak in ["db.internal", "/var/lib", "SELECT"] {
            assert!(!detail.contains(leak), "{class:?}: {detail}");
        }
        assert_eq!(reply.headers.contains_key("retry-after"), status == 503, "{class:?}");
    }
    assert_eq!(app.get("/v1/jobs").await.status, 200, "the next request is served again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_encoded_upload_is_stored_as_sent_and_read_through_its_compression() {
    use std::io::Write;
    let app = spawn_app(with_token()).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(support::collection(12, 3).as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let request = app
        .http
        .post(app.url("/v1/datasets/zipped/uploads?name=zipped.geojson.gz"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/geo+json")
        .header("content-encoding", "gzip");
    let up = reply(request.body(body).send().await.unwrap()).await;
    assert_eq!(up.status, 202, "{}", up.body);
    let job = app.finished(up.body["id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["status"], job["result"]["features_loaded"].as_u64()),
        (&Value::from("succeeded"), Some(12)),
        "{job}"
    );
    assert_eq!(job["result"]["format"], "gzip GeoJSON", "{job}");
}

/// Median of the times `n` sequential GETs of `url` take with `client`.
async fn median_get(client: &reqwest::Client, url: &str, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_on_a_kept_alive_connection_come_as_fast_as_on_fresh_ones() {
    let app = spawn_app(with_token()).await;
    let up = app.upload("/v1/datasets/pages/uploads", "application/geo+json", support::collection(300, 1)).await;
    app.finished(up.body["id"].as_str().unwrap()).await;
    let url = app.url("/collections/pages/items?limit=100");
    let kept_alive = reqwest::Client::new();
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    median_get(&kept_alive, &url, 3).await;
    // Without TCP_NODELAY, the end of each response on a kept-alive connection waits for the
    // client's delayed acknowledgement (some 40 ms), while a fresh connection's does not.
    let (kept, new) = (median_get(&kept_alive, &url, 25).await, median_get(&fresh, &url, 25).await);
    assert!(kept <= new * 2, "kept-alive median {kept:?} against {new:?} on fresh connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pages_come_whole_with_their_length_and_large_ones_stream() {
    let app = spawn_app(with_token()).await;
    let up = app.upload("/v1/datasets/sized/uploads", "application/geo+json", support::collection(2000, 1)).await;
    app.finished(up.body["id"].as_str().unwrap()).await;
    let small = app.http.get(app.url("/collections/sized/items?limit=10")).send().await.unwrap();
    assert_eq!(small.status(), 200);
    assert!(small.headers().get("transfer-encoding").is_none(), "{:?}", small.headers());
    let length: usize = small.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let body = small.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["numberReturned"], 10);
    let large = app.http.get(app.url("/collections/sized/items?limit=2000")).send().await.unwrap();
    assert_eq!(large.headers()["transfer-encoding"], "chunked");
    let body = large.bytes().await.unwrap();
    assert!(body.len() > 64 << 10, "{} bytes", body.len());
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["numberReturned"], 2000);
    assert_eq!(page["features"].as_array().unwrap().len(), 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_compressed_for_clients_that_accept_it() {
    use std::io::Read;
    let app = spawn_app(with_token()).await;
    let up = app.upload("/v1/datasets/squeezed/uploads", "application/geo+json", support::collection(200, 1)).await;
    app.finished(up.body["id"].as_str().unwrap()).await;
    let url = app.url("/collections/squeezed/items?limit=200");
    let plain = app.http.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let gzipped = app.http.get(&url).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let vary: Vec<String> =
        gzipped.headers().get_all("vary").iter().map(|v| v.to_str().unwrap().to_ascii_lowercase()).collect();
    assert!(vary.iter().any(|v| v.contains("accept-encoding")), "{vary:?}");
    let squeezed = gzipped.bytes().await.unwrap();
    assert!(squeezed.len() * 3 < plain.len(), "{} bytes gzipped of {}", squeezed.len(), plain.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&squeezed[..]).read_to_end(&mut unzipped).unwrap();
    let page = |bytes: &[u8]| {
        let mut page: Value = serde_json::from_slice(bytes).unwrap();
        page.as_object_mut().unwrap().remove("timeStamp");
        page
    };
    assert!(page(&unzipped) == page(&plain), "the same page, compressed");
    let brotli = app.http.get(&url).header("accept-encoding", "br").send().await.unwrap();
    assert_eq!(brotli.headers()["content-encoding"], "br");
    let landing = app.http.get(app.url("/")).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(landing.headers()["content-encoding"], "gzip");
}

/// `openapi-spec-validator` (GEOFLOW_OPENAPI_VALIDATOR, else the one `.ci/run` installs, else
/// one on the PATH), or `None` with the reason printed.
fn openapi_validator() -> Option<std::path::PathBuf> {
    let installed = std::path::PathBuf::from("/var/tmp/geoflow-openapi-venv/bin/openapi-spec-validator");
    let chosen = std::env::var_os("GEOFLOW_OPENAPI_VALIDATOR")
        .map(std::path::PathBuf::from)
        .or_else(|| installed.is_file().then_some(installed));
    match chosen {
        Some(path) => Some(path),
        None if support::have_tool("openapi-spec-validator") => Some("openapi-spec-validator".into()),
        None => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_openapi_documents_pass_the_validator_and_declare_the_paging_parameters() {
    let app = spawn_app(ApiConfig { max_items_limit: 5000, ..ApiConfig::default() }).await;
    // A collection whose properties become its items path's parameters, one of them named
    // like a standard parameter (which keeps its own meaning).
    let odd = r#"{"type":"Feature","properties":{"name":"x","limit":3,"a b":true,"when":"2024-05-01"},"geometry":{"type":"Point","coordinates":[1,2]}}"#;
    let up = app.upload("/v1/datasets/odd/uploads", "application/geo+json", odd).await;
    app.finished(up.body["id"].as_str().unwrap()).await;
    let doc = app.get("/openapi.json").await.body;
    let own = doc["paths"]["/collections/odd/items"]["get"]["parameters"].as_array().unwrap().clone();
    let names: Vec<&str> = own.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"name") && names.contains(&"a b") && !names.contains(&"collectionId"), "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "limit").count(), 1, "{names:?}");
    let items = doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"].as_array().unwrap().clone();
    let param =
        |name: &str| items.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} declared")).clone();
    let limit = param("limit");
    assert_eq!((&limit["schema"]["default"], &limit["schema"]["maximum"]), (&json!(10), &json!(5000)), "{limit}");
    let bbox = param("bbox");
    assert_eq!(
        (&bbox["schema"]["type"], &bbox["style"], &bbox["explode"]),
        (&json!("array"), &json!("form"), &json!(false))
    );
    assert_eq!(param("offset")["schema"]["minimum"], 0);
    let sortby = param("sortby");
    assert_eq!((&sortby["schema"]["type"], &sortby["explode"]), (&json!("array"), &json!(false)), "{sortby}");
    assert!(doc["paths"]["/collections/{collectionId}/sortables"]["get"].is_object());

    let Some(validator) = openapi_validator() else { return };
    let dir = tempfile::tempdir().unwrap();
    for path in ["/openapi.json", "/openapi-3.0.json"] {
        let text = app.http.get(app.url(path)).send().await.unwrap().text().await.unwrap();
        let file = dir.path().join(path.trim_start_matches('/'));
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(&validator).arg(&file).output().expect("the validator runs");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{path}: {}", said.chars().take(4000).collect::<String>());
    }
}
