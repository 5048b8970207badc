//! The event pipeline on the embedded deployment: a local object folder with its inbox, the
//! embedded queue and a GeoPackage. Workers run in-process where a test drives them, and as
//! `geoflow worker` processes where a test kills them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geoflow::events::{notification, EventKind};
use geoflow::storage::{Storage, StorageUrl};
use geoflow::worker::inbox::Inbox;
use geoflow::worker::{Worker, WorkerOptions};
use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_queue::{EmbeddedOptions, EmbeddedQueue, Queue};
use geoflow_store::gpkg::GeoPackageStore;
use geoflow_store::protocol::Origin;
use geoflow_store::{
    DatasetDrop, DatasetInfo, Job, JobQuery, JobStatus, LoadOutcome, LoadPlan, LoadReceiver, LoadResult, Removal,
    SourceRecord, Store, StoreError,
};

struct Embedded {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    storage: Storage,
    queue: Arc<EmbeddedQueue>,
}

impl Embedded {
    async fn new(visibility: Duration, max_receive_count: u32) -> Embedded {
        let dir = tempfile::tempdir().unwrap();
        let gpkg = dir.path().join("geoflow.gpkg");
        let store: Arc<dyn Store> =
            Arc::new(tokio::task::spawn_blocking(move || GeoPackageStore::open(&gpkg)).await.unwrap().unwrap());
        let storage = StorageUrl::Local(dir.path().join("objects")).open().unwrap();
        let options = EmbeddedOptions {
            visibility_timeout: visibility,
            max_receive_count: Some(max_receive_count),
            poll_interval: Duration::from_millis(20),
            ..EmbeddedOptions::default()
        };
        let queue = Arc::new(EmbeddedQueue::open(dir.path().join("queue.sqlite"), options).await.unwrap());
        Embedded { dir, store, storage, queue }
    }

    /// A worker whose events create datasets in append mode, as most tests here load several
    /// objects into one dataset.
    fn worker(&self) -> Worker {
        self.worker_in(DatasetMode::Append)
    }

    fn worker_in(&self, mode: DatasetMode) -> Worker {
        Worker {
            queue: self.queue.clone(),
            store: self.store.clone(),
            storage: self.storage.clone(),
            options: WorkerOptions {
                visibility: Duration::from_secs(5),
                wait: Duration::from_millis(200),
                retry_delay: Duration::from_millis(100),
                spool_dir: self.dir.path().to_path_buf(),
                parse_threads: 1,
                mode,
                ..WorkerOptions::default()
            },
        }
    }

    fn objects(&self) -> &Path {
        self.storage.local_root().unwrap()
    }

    /// Writes an object and announces it, as a bucket with notifications would.
    async fn put(&self, key: &str, text: &str) -> String {
        let path = self.objects().join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        let body = notification(EventKind::Created, key, text.len() as u64, None);
        self.queue.send(&body).await.unwrap();
        body
    }

    async fn jobs(&self) -> Vec<Job> {
        self.store.jobs(&JobQuery { limit: 1000, ..JobQuery::default() }).await.unwrap()
    }

    async fn drained(&self) -> bool {
        let stats = self.queue.stats().await.unwrap();
        stats.visible == 0 && stats.invisible == 0
    }

    async fn rows_of(&self, dataset: &str, key: &str) -> Option<u64> {
        let dataset = DatasetName::new(dataset).unwrap();
        self.store.source(&dataset, key).await.unwrap().map(|s| s.feature_count)
    }
}

/// In-process workers running until told to stop.
struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    running: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Workers {
    fn start(env: &Embedded, workers: usize) -> Workers {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let running = (0..workers)
            .map(|_| {
                let (worker, mut rx) = (env.worker(), stop_rx.clone());
                tokio::spawn(async move {
                    worker
                        .run(async move {
                            let _ = rx.wait_for(|s| *s).await;
                        })
                        .await
                })
            })
            .collect();
        Workers { stop, running }
    }

    /// Waits until the queue is empty and nothing is in flight, then stops the workers.
    async fn stop_once_drained(self, env: &Embedded, within: Duration) {
        let deadline = Instant::now() + within;
        while !env.drained().await {
            assert!(Instant::now() < deadline, "the queue did not drain: {:?}", env.queue.stats().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.send(true).unwrap();
        for w in self.running {
            w.await.unwrap().unwrap();
        }
    }
}

/// Runs `workers` workers until the queue is empty and nothing is in flight.
async fn drain(env: &Embedded, workers: usize) {
    Workers::start(env, workers).stop_once_drained(env, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbox_uploads_load_exactly_once_with_two_workers_and_replays_change_nothing() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    let inbox_dir = env.dir.path().join("inbox");
    let mut expected = Vec::new();
    for (i, dataset) in ["roads", "parks", "rivers"].iter().cycle().take(12).enumerate() {
        let folder = inbox_dir.join(dataset);
        std::fs::create_dir_all(&folder).unwrap();
        let name = format!("upload {i}.geojson");
        std::fs::write(folder.join(&name), support::collection(20 + i * 5, i)).unwrap();
        expected.push((dataset.to_string(), name, 20 + i * 5));
    }
    // A file still being written is not taken.
    std::fs::write(inbox_dir.join("roads/partial.geojson.part"), "{").unwrap();
    let mut inbox =
        Inbox::new(inbox_dir.clone(), env.objects().to_path_buf(), env.queue.clone()).with_settle(Duration::ZERO);
    assert!(inbox.scan().await.unwrap().is_empty(), "files are taken only once they are still");
    let keys = inbox.scan().await.unwrap();
    assert_eq!(keys.len(), 12);
    assert!(inbox_dir.join("roads/partial.geojson.part").exists());

    drain(&env, 2).await;

    for (dataset, name, n) in &expected {
        let key =
            keys.iter().find(|k| k.starts_with(&format!("raw/{dataset}/")) && k.ends_with(name.as_str())).unwrap();
        assert_eq!(env.rows_of(dataset, key).await, Some(*n as u64), "{key}");
    }
    let jobs = env.jobs().await;
    assert_eq!(jobs.len(), 12);
    assert!(jobs.iter().all(|j| j.status == JobStatus::Succeeded && j.attempts == 1), "{jobs:#?}");
    let datasets = env.store.datasets().await.unwrap();
    let total: u64 = datasets.iter().map(|d| d.feature_count).sum();
    assert_eq!(total, expected.iter().map(|e| e.2 as u64).sum::<u64>());

    // Every notification delivered twice more: nothing changes.
    for key in &keys {
        let body = notification(EventKind::Created, key, 0, None);
        env.queue.send(&body).await.unwrap();
        env.queue.send(&body).await.unwrap();
    }
    drain(&env, 2).await;
    let jobs = env.jobs().await;
    assert_eq!(jobs.len(), 36);
    assert_eq!(jobs.iter().filter(|j| j.status == JobStatus::SkippedDuplicate).count(), 24);
    let again: u64 = env.store.datasets().await.unwrap().iter().map(|d| d.feature_count).sum();
    assert_eq!(again, total);
    assert_eq!(env.queue.stats().await.unwrap().dead_letters, 0);
}

#[tokio::test]
async fn bad_objects_fail_their_job_with_a_reason_and_are_acknowledged() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    env.put("raw/roads/truncated.geojson", &support::collection(10, 1)[..200]).await;
    env.put("raw/roads/not-geojson.csv", "id,name\n1,a\n").await;
    // Outside the layout: no dataset to record a job for; acknowledged and logged.
    env.put("incoming/x.geojson", &support::collection(1, 1)).await;
    env.queue.send("this is not an event").await.unwrap();
    // Driven step by step: each call handles one batch to the end.
    let worker = env.worker();
    let mut handled = 0;
    while handled < 4 {
        handled += worker.try_execute_task(Duration::from_secs(1)).await.unwrap();
    }
    assert_eq!(worker.try_execute_task(Duration::from_millis(50)).await.unwrap(), 0, "nothing left");

    let jobs = env.jobs().await;
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Failed, "{job:#?}");
        let reason = job.error.as_deref().unwrap();
        assert!(reason.contains(&job.source), "the reason names the source: {reason}");
        assert_eq!(env.rows_of("roads", &job.source).await, None, "nothing stored for {}", job.source);
    }
    let truncated = jobs.iter().find(|j| j.source.ends_with("truncated.geojson")).unwrap();
    assert!(truncated.error.as_deref().unwrap().contains("end of input"), "{truncated:#?}");
    let stats = env.queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.invisible, stats.dead_letters), (0, 0, 0));
}

/// Writes an object modified at `modified` seconds after an arbitrary origin, without announcing it.
fn write_object(env: &Embedded, key: &str, text: &str, modified: u64) -> String {
    let path = env.objects().join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let at = std::time::UNIX_EPOCH + Duration::from_secs(1_750_000_000 + modified);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
    notification(EventKind::Created, key, text.len() as u64, None)
}

/// In replace mode the dataset is its newest object whatever order the events come in,
/// duplicated or late; removing it brings back the newest object left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_mode_follows_the_newest_object_whatever_the_event_order() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    let worker = env.worker_in(DatasetMode::Replace);
    let (old, new) = ("raw/roads/2026-01-01/roads.geojson", "raw/roads/2026-01-02/roads.geojson");
    let old_event = write_object(&env, old, &support::collection(30, 1), 100);
    let new_event = write_object(&env, new, &support::collection(12, 2), 200);
    // The newer object's event first, then the older one's, then both again.
    for event in [&new_event, &old_event, &new_event, &old_event] {
        env.queue.send(event).await.unwrap();
        while worker.try_execute_task(Duration::from_millis(200)).await.unwrap() > 0 {}
    }
    let sources = env.store.sources(&DatasetName::new("roads").unwrap()).await.unwrap();
    assert_eq!(sources.iter().map(|s| (s.source.as_str(), s.feature_count)).collect::<Vec<_>>(), [(new, 12)]);
    let info = env.store.dataset(&DatasetName::new("roads").unwrap()).await.unwrap().unwrap();
    assert_eq!((info.mode, info.feature_count), (DatasetMode::Replace, 12));
    let jobs = env.jobs().await;
    let of = |key: &str| jobs.iter().filter(|j| j.source == key).map(|j| j.status).collect::<Vec<_>>();
    assert!(of(old).iter().all(|s| *s == JobStatus::Superseded), "the older object changes nothing: {jobs:#?}");
    assert!(of(new).contains(&JobStatus::Succeeded) && of(new).contains(&JobStatus::SkippedDuplicate), "{jobs:#?}");

    // The object the dataset holds is deleted: the newest one left takes its place.
    std::fs::remove_file(env.objects().join(new)).unwrap();
    env.queue.send(&notification(EventKind::Removed, new, 0, None)).await.unwrap();
    while worker.try_execute_task(Duration::from_millis(300)).await.unwrap() > 0 {}
    assert_eq!((env.rows_of("roads", new).await, env.rows_of("roads", old).await), (None, Some(30)));
    // And when none is left, the dataset is empty.
    std::fs::remove_file(env.objects().join(old)).unwrap();
    env.queue.send(&notification(EventKind::Removed, old, 0, None)).await.unwrap();
    while worker.try_execute_task(Duration::from_millis(300)).await.unwrap() > 0 {}
    let info = env.store.dataset(&DatasetName::new("roads").unwrap()).await.unwrap().unwrap();
    assert_eq!((info.feature_count, info.sources), (0, 0));
    let stats = env.queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.invisible, stats.dead_letters), (0, 0, 0));
}

/// In upsert mode each key holds the newest object's feature whatever order the events come
/// in, duplicated or late; a feature without a key is reported; deleting an object keeps its
/// features.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upsert_mode_keeps_the_newest_feature_of_each_key_whatever_the_event_order() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    let mut worker = env.worker_in(DatasetMode::Upsert);
    worker.options.key = FeatureKey::Property("code".into());
    let (old, new) = ("raw/meters/2026-01-01/meters.geojson", "raw/meters/2026-01-02/meters.geojson");
    let unkeyed = r#"{"type":"Feature","properties":{"name":"old"},"geometry":{"type":"Point","coordinates":[1,1]}}"#;
    let coded = support::coded(0..30, "old");
    let old_text = format!("{},{unkeyed}]}}", coded.strip_suffix("]}").unwrap());
    let old_event = write_object(&env, old, &old_text, 100);
    let new_event = write_object(&env, new, &support::coded(20..40, "new"), 200);
    // The newer object's event first, then the older one's, then both again.
    for event in [&new_event, &old_event, &new_event, &old_event] {
        env.queue.send(event).await.unwrap();
        while worker.try_execute_task(Duration::from_millis(200)).await.unwrap() > 0 {}
    }
    let names = support::names_by_code(&*env.store, "meters").await;
    assert_eq!(names.len(), 40);
    for i in 0..40 {
        assert_eq!(names[&format!("code-{i}")], if i < 20 { "old" } else { "new" }, "code-{i}");
    }
    let info = env.store.dataset(&DatasetName::new("meters").unwrap()).await.unwrap().unwrap();
    assert_eq!((info.mode, info.key_property.as_deref(), info.feature_count), (DatasetMode::Upsert, Some("code"), 40));
    let jobs = env.jobs().await;
    let loaded = jobs.iter().find(|j| j.source == old && j.status == JobStatus::Succeeded).expect("old loaded");
    let result = loaded.result.as_ref().unwrap();
    assert_eq!((result["features_loaded"].as_u64(), result["superseded_features"].as_u64()), (Some(20), Some(10)));
    assert_eq!(result["errors"][0]["code"], "missing-key", "{result}");
    assert_eq!(result["errors"][0]["index"], 30, "{result}");
    let of = |key: &str| jobs.iter().filter(|j| j.source == key).map(|j| j.status).collect::<Vec<_>>();
    let mut new_jobs = of(new);
    new_jobs.sort_by_key(|s| s.as_str());
    assert_eq!(new_jobs, [JobStatus::SkippedDuplicate, JobStatus::Succeeded], "{jobs:#?}");

    // Deleting an object keeps the features it brought.
    std::fs::remove_file(env.objects().join(new)).unwrap();
    env.queue.send(&notification(EventKind::Removed, new, 0, None)).await.unwrap();
    while worker.try_execute_task(Duration::from_millis(300)).await.unwrap() > 0 {}
    assert_eq!(support::names_by_code(&*env.store, "meters").await, names);
    let jobs = env.jobs().await;
    let removal = jobs.iter().find(|j| j.source == new && j.action == geoflow_store::JobAction::Remove).unwrap();
    assert_eq!(removal.status, JobStatus::Succeeded, "{removal:#?}");
    assert_eq!(removal.result.as_ref().unwrap()["kept_rows"], 20, "{removal:#?}");
    let stats = env.queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.invisible, stats.dead_letters), (0, 0, 0));
}

/// A replace load cut off mid-way (its task dropped, as a crash or a cancelled shutdown does)
/// leaves the previous content whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replace_cut_off_mid_load_leaves_the_previous_content() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    let worker = env.worker_in(DatasetMode::Replace);
    env.queue.send(&write_object(&env, "raw/roads/a.geojson", &support::collection(40, 1), 100)).await.unwrap();
    while worker.try_execute_task(Duration::from_millis(200)).await.unwrap() > 0 {}
    assert_eq!(env.rows_of("roads", "raw/roads/a.geojson").await, Some(40));

    env.queue.send(&write_object(&env, "raw/roads/b.geojson", &support::collection(200_000, 2), 200)).await.unwrap();
    let loading = tokio::spawn({
        let worker = worker.clone();
        async move { worker.try_execute_task(Duration::from_millis(200)).await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.jobs().await.iter().any(|j| j.source == "raw/roads/b.geojson" && j.status == JobStatus::Running) {
        assert!(Instant::now() < deadline, "the load never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    loading.abort();
    let _ = loading.await;
    let roads = DatasetName::new("roads").unwrap();
    let info = env.store.dataset(&roads).await.unwrap().unwrap();
    assert_eq!((info.feature_count, env.rows_of("roads", "raw/roads/a.geojson").await), (40, Some(40)));
    let everything = geoflow_store::FeatureQuery { limit: usize::MAX, ..Default::default() };
    let stored = env.store.features(&roads, &everything).await.unwrap();
    let stored = futures_util::TryStreamExt::try_collect::<Vec<_>>(stored).await.unwrap();
    assert_eq!(stored.len(), 40, "the table holds the previous rows, whole");
}

#[tokio::test]
async fn removals_delete_rows_and_late_events_change_nothing() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    let created = env.put("raw/parks/p.geojson", &support::collection(15, 3)).await;
    env.put("raw/parks/q.geojson", &support::collection(5, 4)).await;
    drain(&env, 1).await;
    assert_eq!(env.rows_of("parks", "raw/parks/p.geojson").await, Some(15));

    std::fs::remove_file(env.objects().join("raw/parks/p.geojson")).unwrap();
    env.queue.send(&notification(EventKind::Removed, "raw/parks/p.geojson", 0, None)).await.unwrap();
    drain(&env, 1).await;
    assert_eq!(env.rows_of("parks", "raw/parks/p.geojson").await, None);
    assert_eq!(env.rows_of("parks", "raw/parks/q.geojson").await, Some(5), "other sources keep their rows");

    // The creation event again, late: the object is gone, so nothing comes back.
    env.queue.send(&created).await.unwrap();
    drain(&env, 1).await;
    assert_eq!(env.rows_of("parks", "raw/parks/p.geojson").await, None);
    let latest = &env.jobs().await[0];
    assert_eq!(latest.status, JobStatus::SkippedDuplicate, "{latest:#?}");

    // A new version of q replaces q's rows only.
    env.put("raw/parks/q.geojson", &support::collection(8, 5)).await;
    drain(&env, 1).await;
    assert_eq!(env.rows_of("parks", "raw/parks/q.geojson").await, Some(8));
}

/// A `geoflow worker` process on the test's embedded deployment.
fn spawn_worker(root: &Path, visibility_s: u64, max_receive_count: u32) -> Child {
    worker_command(root, visibility_s, max_receive_count).spawn().expect("geoflow worker starts")
}

fn worker_command(root: &Path, visibility_s: u64, max_receive_count: u32) -> std::process::Command {
    let mut cmd = support::geoflow();
    cmd.arg("worker")
        .env("GEOFLOW_DATABASE_URL", root.join("geoflow.gpkg"))
        .env("GEOFLOW_STORAGE_URL", root.join("objects"))
        .env("GEOFLOW_QUEUE_URL", root.join("queue.sqlite"))
        .env("GEOFLOW_INBOX", root.join("inbox"))
        .env("GEOFLOW_VISIBILITY_TIMEOUT", visibility_s.to_string())
        .env("GEOFLOW_MAX_RECEIVE_COUNT", max_receive_count.to_string())
        .env("GEOFLOW_RETRY_DELAY", "1")
        .env("GEOFLOW_GRACE_PERIOD", "30");
    cmd
}

fn kill(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
}

async fn wait_for_job(env: &Embedded, what: &str, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(job) = env.jobs().await.into_iter().find(&done) {
            return job;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:#?}", env.jobs().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn big_upload(root: &Path, key: &str, features: usize) -> PathBuf {
    let path = root.join("objects").join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, support::collection(features, 9)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_load_is_replaced_and_the_source_loads_once() {
    let env = Embedded::new(Duration::from_secs(2), 5).await;
    let root = env.dir.path().to_path_buf();
    let key = "raw/roads/2026-01-01/big.geojson";
    let n = 300_000;
    big_upload(&root, key, n);
    env.queue.send(&notification(EventKind::Created, key, 0, None)).await.unwrap();

    let mut first = spawn_worker(&root, 2, 5);
    wait_for_job(&env, "the load to start", |j| j.status == JobStatus::Running).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(&mut first);
    assert_eq!(env.rows_of("roads", key).await, None, "killed mid-load: no rows, no partial rows");

    let mut second = spawn_worker(&root, 2, 5);
    let job = wait_for_job(&env, "the reload", |j| j.status.is_final()).await;
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    assert!(second.wait().unwrap().success(), "SIGTERM ends the worker cleanly");
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    assert_eq!(job.attempts, 2, "{job:#?}");
    assert_eq!(env.rows_of("roads", key).await, Some(n as u64));
    assert!(env.drained().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_crashing_its_worker_ends_in_the_dead_letters() {
    let env = Embedded::new(Duration::from_secs(1), 2).await;
    let root = env.dir.path().to_path_buf();
    let key = "raw/roads/2026-01-01/crashes.geojson";
    big_upload(&root, key, 300_000);
    env.queue.send(&notification(EventKind::Created, key, 0, None)).await.unwrap();

    for attempt in 1..=2 {
        let mut worker = spawn_worker(&root, 1, 2);
        wait_for_job(&env, "the load to start", |j| j.status == JobStatus::Running && j.attempts == attempt).await;
        kill(&mut worker);
    }
    // The third receive finds the message over its limit and moves it aside.
    let mut worker = spawn_worker(&root, 1, 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.queue.stats().await.unwrap().dead_letters == 0 {
        assert!(Instant::now() < deadline, "the message never reached the dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(&mut worker);
    let dead = env.queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].body.contains("crashes.geojson"));
    assert_eq!(env.rows_of("roads", key).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_load_in_flight_finish() {
    let env = Embedded::new(Duration::from_secs(5), 5).await;
    let root = env.dir.path().to_path_buf();
    let key = "raw/roads/2026-01-01/in-flight.geojson";
    big_upload(&root, key, 100_000);
    env.queue.send(&notification(EventKind::Created, key, 0, None)).await.unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let mut worker = worker_command(&root, 5, 5).env("GEOFLOW_LISTEN", &listen).spawn().unwrap();
    wait_for_job(&env, "the load to start", |j| j.status == JobStatus::Running).await;
    // The worker answers its container health check while it loads.
    let healthcheck = support::geoflow().args(["healthcheck", "--listen", &listen]).status().unwrap();
    assert!(healthcheck.success());
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
    assert!(worker.wait().unwrap().success());
    let job = env.jobs().await.remove(0);
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    assert_eq!(env.rows_of("roads", key).await, Some(100_000));
    assert!(env.drained().await, "the message was deleted after the commit");
}

#[test]
fn worker_help_names_its_configuration() {
    let out = support::geoflow().args(["worker", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["GEOFLOW_STORAGE_URL", "GEOFLOW_QUEUE_URL", "GEOFLOW_DATABASE_URL", "--concurrency"] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_left_at_the_end_of_the_grace_period_give_their_message_back() {
    let env = Embedded::new(Duration::from_secs(60), 5).await;
    let key = "raw/roads/2026-01-01/slow.geojson";
    big_upload(env.dir.path(), key, 300_000);
    env.queue.send(&notification(EventKind::Created, key, 0, None)).await.unwrap();
    let mut worker = env.worker();
    worker.options.grace = Duration::from_millis(1);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    wait_for_job(&env, "the load to start", |j| j.status == JobStatus::Running).await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    // Released at once, not after the 60 s visibility timeout.
    let stats = env.queue.stats().await.unwrap();
    assert_eq!((stats.visible, stats.invisible), (1, 0), "{stats:?}");
}

/// Overwrites, deletes and recreations racing the load of a large first version, with two
/// workers: whatever the moment, the dataset ends holding what the folder holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwrites_and_deletes_racing_a_load_leave_the_dataset_equal_to_storage() {
    use support::race::{self, Change};
    let env = Embedded::new(Duration::from_secs(30), 10).await;
    let workers = Workers::start(&env, 2);
    let apply = |change: Change| async {
        match change {
            Change::Put { key, body } => {
                // As uploads and the inbox write: whole, by rename.
                let len = body.len() as u64;
                env.storage.put_whole(&key, body.into(), "application/geo+json").await.unwrap();
                env.queue.send(&notification(EventKind::Created, &key, len, None)).await.unwrap();
            }
            Change::Delete { key } => {
                std::fs::remove_file(env.objects().join(&key)).unwrap();
                env.queue.send(&notification(EventKind::Removed, &key, 0, None)).await.unwrap();
            }
        }
    };
    let trials = race::run_trials(&*env.store, Duration::from_millis(1500), apply).await;
    workers.stop_once_drained(&env, Duration::from_secs(300)).await;
    race::assert_store_equals_storage(&*env.store, &trials).await;
    let jobs = env.jobs().await;
    assert!(jobs.iter().all(|j| j.status != JobStatus::Failed), "no job failed: {jobs:#?}");
    assert!(jobs.iter().any(|j| j.status == JobStatus::Superseded), "some load was superseded: {jobs:#?}");
}

/// A job whose load committed just before its worker died is `succeeded`, with that load, when
/// its message comes back — not a duplicate of itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_committed_before_its_worker_died_finishes_its_job_as_succeeded() {
    use geoflow::events::JobTag;
    use geoflow::ingest::{ingest, IngestRequest, Input, Status};
    use geoflow_core::report::Policy;
    use geoflow_store::{JobAction, JobUpdate, NewJob};

    let env = Embedded::new(Duration::from_secs(5), 3).await;
    let key = "raw/roads/2026-12-06/a.geojson";
    let body = support::collection(10, 1);
    env.storage.put_whole(key, body.clone().into(), "application/geo+json").await.unwrap();
    // What the worker that died did: it started the job, loaded the object, and stopped.
    let roads = DatasetName::new("roads").unwrap();
    let new = NewJob {
        id: "j-crashed".into(),
        dataset: roads.clone(),
        source: key.into(),
        action: JobAction::Load,
        object_version: None,
    };
    env.store.upsert_job(&new).await.unwrap();
    let running = JobUpdate { status: Some(JobStatus::Running), ..JobUpdate::default() };
    env.store.update_job("j-crashed", running).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let meta = env.storage.head(key).await.unwrap().unwrap();
    let mut request = IngestRequest::new(Input::Path(env.objects().join(key)), roads);
    request.source = Some(key.into());
    request.object_version = geoflow::storage::object_version(&meta);
    let summary = ingest(env.store.clone(), request, Arc::default()).await.unwrap();
    assert_eq!(summary.status, Status::Loaded);

    // Its message comes back.
    let tag = JobTag {
        job: "j-crashed".into(),
        on_invalid: Policy::Skip,
        schema_policy: None,
        geometry_type: None,
        mode: None,
        key: None,
        force: false,
        read: Default::default(),
    };
    env.queue.send(&notification(EventKind::Created, key, body.len() as u64, Some(&tag))).await.unwrap();
    drain(&env, 1).await;
    let job = env.store.job("j-crashed").await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts, job.load_id), (JobStatus::Succeeded, 2, summary.load_id), "{job:#?}");
    assert_eq!(job.result.as_ref().unwrap()["features_loaded"], 10, "{job:#?}");
    assert_eq!(env.rows_of("roads", key).await, Some(10));
}

#[tokio::test]
async fn a_dropped_dataset_stays_dropped_through_its_objects_removal_events() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    let late = env.put("raw/lakes/a.geojson", &support::collection(6, 1)).await;
    env.put("raw/lakes/b.geojson", &support::collection(4, 2)).await;
    env.put("raw/rivers/r.geojson", &support::collection(3, 3)).await;
    drain(&env, 1).await;
    let lakes = DatasetName::new("lakes").unwrap();

    let dropped = geoflow::lifecycle::drop_dataset(&*env.store, &*env.store, Some(&env.storage), &lakes).await.unwrap();
    assert_eq!(dropped.dataset.map(|d| (d.sources, d.rows)), Some((2, 10)));
    assert_eq!(dropped.objects, Some(2));
    assert!(!env.objects().join("raw/lakes").join("a.geojson").exists());
    assert!(env.objects().join("raw/rivers/r.geojson").exists(), "other datasets' objects stay");

    // What a bucket sends after the deletions, and a creation event delivered late: no-ops.
    for key in ["raw/lakes/a.geojson", "raw/lakes/b.geojson"] {
        env.queue.send(&notification(EventKind::Removed, key, 0, None)).await.unwrap();
    }
    env.queue.send(&late).await.unwrap();
    drain(&env, 1).await;
    assert_eq!(env.store.dataset(&lakes).await.unwrap(), None);
    let jobs = env.jobs().await;
    let after: Vec<(JobStatus, &str)> = jobs[..3].iter().map(|j| (j.status, j.source.as_str())).collect();
    assert!(after.iter().all(|(status, _)| *status == JobStatus::SkippedDuplicate), "{after:?}");

    // Without its objects deleted, a later event for one of them creates the dataset anew.
    env.put("raw/lakes/c.geojson", &support::collection(2, 4)).await;
    drain(&env, 1).await;
    let dropped = geoflow::lifecycle::drop_dataset(&*env.store, &*env.store, None, &lakes).await.unwrap();
    assert_eq!((dropped.dataset.map(|d| d.rows), dropped.objects), (Some(2), None));
    assert_eq!(env.store.dataset(&lakes).await.unwrap(), None);
    env.queue.send(&notification(EventKind::Created, "raw/lakes/c.geojson", 0, None)).await.unwrap();
    drain(&env, 1).await;
    assert_eq!(env.store.dataset(&lakes).await.unwrap().map(|d| d.feature_count), Some(2));
    assert_eq!(env.rows_of("rivers", "raw/rivers/r.geojson").await, Some(3));
}

/// The store, with a load of `key` that commits right after each drop: what a worker whose
/// load waited for the dataset's lock does while the drop runs.
struct LoadAfterDrop {
    store: Arc<dyn Store>,
    worker: Worker,
    key: String,
}

#[async_trait::async_trait]
impl geoflow_store::Catalog for LoadAfterDrop {
    fn location(&self) -> String {
        self.store.location()
    }
    async fn migrate(&self) -> Result<(), StoreError> {
        self.store.migrate().await
    }
    async fn check_ready(&self) -> Result<(), StoreError> {
        self.store.check_ready().await
    }
    async fn source(&self, d: &DatasetName, s: &str) -> Result<Option<SourceRecord>, StoreError> {
        self.store.source(d, s).await
    }
    async fn sources(&self, d: &DatasetName) -> Result<Vec<SourceRecord>, StoreError> {
        self.store.sources(d).await
    }
    async fn settled_source(&self, d: &DatasetName, s: &str) -> Result<Option<SourceRecord>, StoreError> {
        self.store.settled_source(d, s).await
    }
    async fn datasets(&self) -> Result<Vec<DatasetInfo>, StoreError> {
        self.store.datasets().await
    }
    async fn dataset(&self, d: &DatasetName) -> Result<Option<DatasetInfo>, StoreError> {
        self.store.dataset(d).await
    }
}

#[async_trait::async_trait]
impl geoflow_store::Loads for LoadAfterDrop {
    async fn load(&self, plan: LoadPlan, rows: LoadReceiver) -> Result<LoadOutcome, StoreError> {
        self.store.load(plan, rows).await
    }
    async fn record_failure(&self, plan: &LoadPlan, result: &LoadResult) -> Result<i64, StoreError> {
        self.store.record_failure(plan, result).await
    }
    async fn remove_source(
        &self,
        d: &DatasetName,
        s: &str,
        o: Option<&Origin>,
        cause: geoflow_store::RemovalCause,
    ) -> Result<Removal, StoreError> {
        self.store.remove_source(d, s, o, cause).await
    }
    async fn drop_dataset(&self, d: &DatasetName) -> Result<Option<DatasetDrop>, StoreError> {
        let dropped = self.store.drop_dataset(d).await?;
        self.worker.queue.send(&notification(EventKind::Created, &self.key, 0, None)).await.unwrap();
        assert_eq!(self.worker.try_execute_task(Duration::from_secs(5)).await.unwrap(), 1);
        Ok(dropped)
    }
    async fn set_mode(
        &self,
        d: &DatasetName,
        mode: DatasetMode,
        key: &geoflow_core::dataset::FeatureKey,
    ) -> Result<Option<DatasetInfo>, StoreError> {
        self.store.set_mode(d, mode, key).await
    }

    async fn set_temporal(
        &self,
        d: &DatasetName,
        temporal: Option<&geoflow_store::Temporal>,
    ) -> Result<Option<DatasetInfo>, StoreError> {
        self.store.set_temporal(d, temporal).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_waited_for_the_drop_is_undone_with_its_deleted_object() {
    let env = Embedded::new(Duration::from_secs(5), 3).await;
    env.put("raw/lakes/a.geojson", &support::collection(6, 1)).await;
    drain(&env, 1).await;
    let lakes = DatasetName::new("lakes").unwrap();
    let racing = LoadAfterDrop { store: env.store.clone(), worker: env.worker(), key: "raw/lakes/a.geojson".into() };

    let dropped = geoflow::lifecycle::drop_dataset(&racing, &racing, Some(&env.storage), &lakes).await.unwrap();
    assert_eq!((dropped.dataset.map(|d| d.rows), dropped.objects), (Some(6), Some(1)));
    // The load brought the dataset back from the object; the object's deletion took it out
    // again, as its removal event would have (a local folder sends none).
    let left = env.store.dataset(&lakes).await.unwrap().expect("the racing load recreated the dataset");
    assert_eq!((left.sources, left.feature_count), (0, 0));
    assert!(env.store.sources(&lakes).await.unwrap().is_empty());
}
