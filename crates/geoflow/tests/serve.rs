//! `geoflow serve` as a newcomer runs it: no configuration, no services, everything under
//! ./geoflow-data. And the memory of a server receiving a 1 GiB upload.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_needs_no_configuration() {
    let dir = support::scratch();
    // A report time already past today: the day's report run is due, so it runs at start.
    let server = Server::start_with(dir.path(), &["serve"], &[("GEOFLOW_REPORT_AT", "00:00")], Stdio::inherit()).await;

    let response = reqwest::Client::new()
        .post(server.url("/v1/datasets/parks/uploads?name=parks.geojson"))
        .header("content-type", "application/geo+json")
        .body(support::collection(12, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    let job = server.finished(job["id"].as_str().unwrap()).await;
    assert_eq!((&job["status"], &job["result"]["features_loaded"]), (&Value::from("succeeded"), &Value::from(12)));

    // The inbox works too: a file dropped into geoflow-data/inbox/<dataset>/ is loaded.
    let inbox = dir.path().join("geoflow-data/inbox/roads");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("roads.geojson"), support::collection(5, 2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let datasets = server.json("/v1/datasets").await;
        let roads = datasets["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "roads").cloned();
        if roads.as_ref().is_some_and(|d| d["feature_count"] == 5) {
            break;
        }
        assert!(Instant::now() < deadline, "the inbox file was not loaded: {datasets}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Yesterday's report, written by the daily run, is served.
    let yesterday = time::OffsetDateTime::now_utc().date().previous_day().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.json("/v1/reports").await["reports"][0]["date"] != yesterday.as_str() {
        assert!(Instant::now() < deadline, "no report of {yesterday}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = server.json(&format!("/v1/reports/{yesterday}")).await;
    assert_eq!((report["schema_version"].as_u64(), report["date"].as_str()), (Some(1), Some(yesterday.as_str())));
    assert!(dir.path().join(format!("geoflow-data/objects/reports/{yesterday}.json")).is_file());

    assert_eq!(server.terminate(), Some(0));
    let gpkg = dir.path().join("geoflow-data/geoflow.gpkg");
    assert!(gpkg.is_file());
    if support::have_tool("ogrinfo") {
        let (count, _, _) = support::ogr_layer(&gpkg, Some("parks"));
        assert_eq!(count, 12);
    }
}

/// `GEOFLOW_LOG_FORMAT=json`: every line is one JSON object, and the lines of a request carry
/// the id its response names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id() {
    let dir = support::scratch();
    let log = dir.path().join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    let env = [("GEOFLOW_LOG_FORMAT", "json"), ("GEOFLOW_LOG", "info")];
    let server = Server::start_with(dir.path(), &["serve"], &env, Stdio::from(file)).await;
    let response = reqwest::Client::new()
        .post(server.url("/v1/datasets/parks/uploads"))
        .header("content-type", "application/geo+json")
        .body(support::collection(3, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    let job: Value = response.json().await.unwrap();
    server.finished(job["id"].as_str().unwrap()).await;
    assert_eq!(server.terminate(), Some(0));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(text.lines().all(|l| l.starts_with('{') || !l.contains("INFO")), "{text}");
    let of_request: Vec<&Value> = lines.iter().filter(|l| l.to_string().contains(&request_id)).collect();
    assert!(
        of_request.iter().any(|l| l.to_string().contains("upload stored and queued")),
        "the upload's log line names request {request_id}: {text}"
    );
    assert!(lines
        .iter()
        .any(|l| l.to_string().contains(job["id"].as_str().unwrap()) && l.to_string().contains("job finished")));
}

/// A 1 GiB upload streams through: the server's peak memory grows by a few parts, not by
/// the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_upload_keeps_memory_flat() {
    const BODY: u64 = 1 << 30;
    let dir = support::scratch();
    // The API alone: nothing loads the upload while it is measured.
    let server = Server::start(dir.path(), &["api"]).await;
    server.json("/v1/jobs").await;
    let (_, before) = server.memory_kib();

    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let head = format!(
        "POST /v1/datasets/big/uploads?name=big.geojson HTTP/1.1\r\nHost: x\r\nContent-Type: application/geo+json\r\n\
         Content-Length: {BODY}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 1 << 20];
    let mut sent = 0u64;
    for _ in 0..BODY / chunk.len() as u64 {
        // A server that answers early (a full disk, say) closes the connection: show its answer.
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len() as u64;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "after {sent} bytes: {answer:?}");

    let (peak, _) = server.memory_kib();
    let stored = std::fs::read_dir(dir.path().join("geoflow-data/objects/raw/big")).unwrap().next().unwrap().unwrap();
    assert_eq!(std::fs::metadata(stored.path().join("big.geojson")).unwrap().len(), BODY);
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!("1 GiB upload: resident memory {} MiB before, peak {} MiB", before / 1024, peak / 1024);
    assert!(growth_mib < 64, "peak memory grew by {growth_mib} MiB during a 1 GiB upload");
}
