//! End-to-end latency and throughput of the event pipeline.
//!
//! `cargo run --release -p geoflow --example pipeline_bench -- [gpkg|postgis] [FILES] [IN_FLIGHT] [FEATURES]`
//!
//! Uploads FILES files of FEATURES points each (default 200 × 1000) into a local object folder
//! and announces each on the embedded queue, keeping IN_FLIGHT uploads (default 20)
//! outstanding, and measures each upload's latency from its PUT to its rows being committed
//! (its job finished). Runs once with one worker and once with two, on a fresh store each
//! time: a GeoPackage, or a throwaway PostGIS cluster (`postgis`). Prints p50/p99 latency and
//! sustained files/s and features/s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geoflow::events::{notification, EventKind};
use geoflow::storage::StorageUrl;
use geoflow::worker::{Worker, WorkerOptions};
use geoflow_queue::{EmbeddedOptions, EmbeddedQueue, Queue};
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::postgis::PostgisStore;
use geoflow_store::Store;

fn collection(n: usize, seed: usize) -> String {
    let features: Vec<String> = (0..n)
        .map(|i| {
            let (x, y) = (((i * 7 + seed) % 3600) as f64 / 10.0 - 179.95, ((i * 13 + seed) % 1700) as f64 / 10.0 - 84.95);
            format!(
                r#"{{"type":"Feature","properties":{{"id":{i},"name":"feature {i}","value":{}.5}},"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}"#,
                i % 97
            )
        })
        .collect();
    format!("{{\"type\":\"FeatureCollection\",\"features\":[{}]}}", features.join(",\n"))
}

async fn open_store(kind: &str, dir: &std::path::Path) -> (Arc<dyn Store>, Option<geoflow_testkit::TestDatabase>) {
    match kind {
        "postgis" => {
            let db = geoflow_testkit::postgis_database().await.expect("PostgreSQL and PostGIS are installed");
            (Arc::new(PostgisStore::connect(db.url()).await.unwrap()), Some(db))
        }
        _ => {
            let path = dir.join("geoflow.gpkg");
            (Arc::new(tokio::task::spawn_blocking(move || GeoPackageStore::open(&path)).await.unwrap().unwrap()), None)
        }
    }
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn run(kind: &str, workers: usize, files: usize, in_flight: usize, features: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (store, _db) = open_store(kind, dir.path()).await;
    let storage = StorageUrl::Local(dir.path().join("objects")).open().unwrap();
    let options = EmbeddedOptions { poll_interval: Duration::from_millis(5), ..EmbeddedOptions::default() };
    let queue: Arc<dyn Queue> = Arc::new(EmbeddedQueue::open(dir.path().join("queue.sqlite"), options).await.unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    for _ in 0..workers {
        let worker = Worker {
            queue: queue.clone(),
            store: store.clone(),
            storage: storage.clone(),
            options: WorkerOptions { concurrency: 2, parse_threads: 1, ..WorkerOptions::default() },
        };
        let mut stopped = stopped.clone();
        running.push(tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    let bodies: Vec<String> = (0..8).map(|seed| collection(features, seed)).collect();
    let root = storage.local_root().unwrap().to_path_buf();
    let started = Instant::now();
    let mut outstanding: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(files);
    let mut sent = 0;
    while latencies.len() < files {
        while sent < files && outstanding.len() < in_flight {
            let dataset = ["roads", "parks", "rivers", "lakes"][sent % 4];
            let key = format!("raw/{dataset}/2026-11-22/upload-{sent}.geojson");
            let path = root.join(&key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let t0 = Instant::now();
            std::fs::write(&path, &bodies[sent % bodies.len()]).unwrap();
            let id = queue.send(&notification(EventKind::Created, &key, 0, None)).await.unwrap();
            outstanding.insert(id, t0);
            sent += 1;
        }
        let mut finished = Vec::new();
        for (id, t0) in &outstanding {
            if store.job(id).await.unwrap().is_some_and(|j| j.status.is_final()) {
                finished.push((id.clone(), t0.elapsed()));
            }
        }
        for (id, latency) in finished {
            outstanding.remove(&id);
            latencies.push(latency);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    stop.send(true).unwrap();
    for r in running {
        r.await.unwrap().unwrap();
    }
    latencies.sort();
    Run { latencies, elapsed }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("gpkg", String::as_str).to_string();
    let files: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let in_flight: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let features: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(1000);
    println!("{kind}: {files} files of {features} features, {in_flight} uploads in flight\n");
    println!("| workers | p50 latency | p99 latency | files/s | features/s |");
    println!("|---|---|---|---|---|");
    for workers in [1, 2] {
        let r = run(&kind, workers, files, in_flight, features).await;
        let per_s = files as f64 / r.elapsed.as_secs_f64();
        println!(
            "| {workers} | {:.0} ms | {:.0} ms | {per_s:.1} | {:.0} |",
            percentile(&r.latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&r.latencies, 0.99).as_secs_f64() * 1e3,
            per_s * features as f64
        );
    }
}
