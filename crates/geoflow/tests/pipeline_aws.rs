//! The event pipeline on the production deployment: S3 with versioning and event
//! notifications to SQS (with a dead-letter queue), two `geoflow worker` processes and
//! PostGIS. S3 and SQS are a moto server, PostGIS a throwaway cluster, both started by the
//! test harness.

mod support;

use geoflow_store::prelude::*;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use geoflow::events::EventKind;
use geoflow_core::dataset::{DatasetMode, DatasetName};
use geoflow_store::postgis::PostgisStore;
use geoflow_store::{Job, JobQuery, JobStatus, Store};
use geoflow_testkit::{moto_server, postgis_database, unique_name, MotoServer};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

const TOKEN: &str = "pipeline-token-0123456789";

struct Aws {
    moto: MotoServer,
    bucket: String,
    queue_url: String,
    dlq_url: String,
    s3: Arc<dyn ObjectStore>,
    visibility_s: u64,
}

/// A versioned bucket whose `raw/` events go to a fresh queue (10 s visibility) with a
/// dead-letter queue after 3 receives.
async fn aws(moto: MotoServer) -> Aws {
    aws_with(moto, 10, 3).await
}

async fn aws_with(moto: MotoServer, visibility_s: u64, max_receive_count: u32) -> Aws {
    let bucket = unique_name("geoflow-raw");
    let queues = moto
        .create_queue_with_dlq(&unique_name("geoflow-ingest"), Duration::from_secs(visibility_s), max_receive_count)
        .await;
    let sqs = moto.sqs_client().await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queues.queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap();
    // The S3 control calls object_store does not make, as plain S3 REST requests.
    let http = reqwest::Client::new();
    let base = format!("{}/{bucket}", moto.endpoint_url());
    for (query, body) in [
        ("", String::new()),
        ("?versioning", "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>".to_string()),
        (
            "?notification",
            format!(
                "<NotificationConfiguration><QueueConfiguration><Id>raw</Id><Queue>{arn}</Queue>\
                 <Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event>\
                 <Filter><S3Key><FilterRule><Name>prefix</Name><Value>raw/</Value></FilterRule></S3Key></Filter>\
                 </QueueConfiguration></NotificationConfiguration>"
            ),
        ),
    ] {
        let response = http.put(format!("{base}{query}")).body(body).send().await.unwrap();
        assert!(response.status().is_success(), "PUT {query}: {}", response.status());
    }
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(moto.endpoint_url())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    Aws { moto, bucket, queue_url: queues.queue_url, dlq_url: queues.dlq_url, s3: Arc::new(s3), visibility_s }
}

impl Aws {
    fn worker(&self, database: &str) -> Running {
        Running(Some(self.command("worker", database).spawn().expect("geoflow worker starts")))
    }

    /// `geoflow api` on a free port, with `TOKEN` for writes; once it answers ready.
    async fn api(&self, database: &str) -> (Running, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let child = self
            .command("api", database)
            .env("GEOFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .env("GEOFLOW_API_TOKENS", TOKEN)
            .spawn()
            .expect("geoflow api starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{base}/readyz")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(Instant::now() < deadline, "geoflow api did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (Running(Some(child)), base)
    }

    /// `geoflow <subcommand>` on this bucket and queue.
    fn command(&self, subcommand: &str, database: &str) -> std::process::Command {
        let mut command = support::geoflow();
        command
            .arg(subcommand)
            .env("GEOFLOW_DATABASE_URL", database)
            .env("GEOFLOW_STORAGE_URL", format!("s3://{}", self.bucket))
            .env("GEOFLOW_QUEUE_URL", &self.queue_url)
            .env("GEOFLOW_RETRY_DELAY", "1")
            .env("GEOFLOW_VISIBILITY_TIMEOUT", self.visibility_s.to_string())
            // Most tests here load several objects into one dataset.
            .env("GEOFLOW_DATASET_MODE", "append")
            .env("AWS_ENDPOINT_URL", self.moto.endpoint_url())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
        command
    }

    async fn messages(&self, url: &str) -> u64 {
        let attributes = self
            .moto
            .sqs_client()
            .await
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        attributes.values().map(|v| v.parse::<u64>().unwrap()).sum()
    }

    /// Sends what S3 would send for `key`, as a replay of its notification.
    async fn replay(&self, kind: EventKind, key: &str) {
        let body = geoflow::events::notification(kind, key, 0, None);
        self.moto.sqs_client().await.send_message().queue_url(&self.queue_url).message_body(body).send().await.unwrap();
    }
}

/// A worker process, killed if the test ends without stopping it.
struct Running(Option<Child>);

impl Running {
    fn kill(mut self) {
        let mut worker = self.0.take().unwrap();
        worker.kill().unwrap();
        worker.wait().unwrap();
    }

    fn stop(mut self) {
        let mut worker = self.0.take().unwrap();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(worker.id() as i32, libc::SIGTERM) };
        assert!(worker.wait().unwrap().success(), "a worker exits 0 on SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut worker) = self.0.take() {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }
}

async fn wait_for_jobs(store: &dyn Store, finished: usize) -> Vec<Job> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let jobs = store.jobs(&JobQuery { limit: 1000, ..JobQuery::default() }).await.unwrap();
        if jobs.iter().filter(|j| j.status.is_final()).count() >= finished {
            return jobs;
        }
        let pending: Vec<_> = jobs.iter().filter(|j| !j.status.is_final()).collect();
        assert!(
            Instant::now() < deadline,
            "timed out: {} jobs, {finished} expected finished; pending: {pending:#?}",
            jobs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// In replace mode, on S3 and SQS: the dataset is the newest object (S3's last-modified, then
/// the key), whatever order events arrive in and however often; deleting it brings back the
/// newest object left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_mode_on_s3_follows_the_newest_object_whatever_the_event_order() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws(moto).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let roads = DatasetName::new("roads").unwrap();
    let (old, new) = ("raw/roads/2026-12-01/roads.geojson", "raw/roads/2026-12-02/roads.geojson");
    aws.s3.put(&ObjectPath::from(old), support::collection(30, 1).into()).await.unwrap();
    // S3 keeps last-modified times to the second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    aws.s3.put(&ObjectPath::from(new), support::collection(12, 2).into()).await.unwrap();
    let mut worker = aws.command("worker", db.url());
    let _workers = [
        Running(Some(worker.env("GEOFLOW_DATASET_MODE", "replace").spawn().unwrap())),
        Running(Some(worker.spawn().unwrap())),
    ];
    wait_for_jobs(&store, 2).await;
    let held = || async {
        let sources = store.sources(&roads).await.unwrap();
        sources.into_iter().map(|s| (s.source, s.feature_count)).collect::<Vec<_>>()
    };
    assert_eq!(held().await, [(new.to_string(), 12)]);
    assert_eq!(store.dataset(&roads).await.unwrap().unwrap().mode, DatasetMode::Replace);

    // The older object's event delivered again after the newer one's, and the newer one's
    // duplicated: nothing changes.
    aws.replay(EventKind::Created, old).await;
    aws.replay(EventKind::Created, new).await;
    let jobs = wait_for_jobs(&store, 4).await;
    assert_eq!(held().await, [(new.to_string(), 12)], "{jobs:#?}");
    let late = jobs.iter().filter(|j| j.source == old).map(|j| j.status).collect::<Vec<_>>();
    assert!(late.contains(&JobStatus::Superseded), "{jobs:#?}");

    // The object the dataset holds is deleted: the newest one left loads in its place.
    aws.s3.delete(&ObjectPath::from(new)).await.unwrap();
    // moto sends no event for a delete marker (S3 sends ObjectRemoved:DeleteMarkerCreated).
    aws.replay(EventKind::Removed, new).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while held().await != [(old.to_string(), 30)] {
        assert!(Instant::now() < deadline, "{:#?}", wait_for_jobs(&store, 0).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.dataset(&roads).await.unwrap().unwrap().feature_count, 30);
    assert_eq!(aws.messages(&aws.dlq_url).await, 0);
}

/// In upsert mode, on S3 and SQS with two workers: each key holds the newest object's feature
/// whatever order events arrive in; a worker killed mid-load leaves the previous content, and
/// the load is done again; deleting an object keeps its features.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upsert_mode_on_s3_keeps_the_newest_feature_of_each_key_through_reorders_and_kills() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws_with(moto, 2, 10).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let meters = DatasetName::new("meters").unwrap();
    let (old, new, big) =
        ("raw/meters/2026-12-01/m.geojson", "raw/meters/2026-12-02/m.geojson", "raw/meters/2026-12-03/m.geojson");
    aws.s3.put(&ObjectPath::from(old), support::coded(0..30, "old").into()).await.unwrap();
    // S3 keeps last-modified times to the second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    aws.s3.put(&ObjectPath::from(new), support::coded(20..40, "new").into()).await.unwrap();
    let upserting = |aws: &Aws| {
        let mut worker = aws.command("worker", db.url());
        worker.env("GEOFLOW_DATASET_MODE", "upsert").env("GEOFLOW_UPSERT_KEY", "code");
        Running(Some(worker.spawn().unwrap()))
    };
    let workers = [upserting(&aws), upserting(&aws)];
    wait_for_jobs(&store, 2).await;
    // The older object's event again after the newer one's, the newer one's duplicated.
    aws.replay(EventKind::Created, old).await;
    aws.replay(EventKind::Created, new).await;
    let jobs = wait_for_jobs(&store, 4).await;
    let expected: std::collections::BTreeMap<String, String> =
        (0..40).map(|i| (format!("code-{i}"), if i < 20 { "old" } else { "new" }.to_string())).collect();
    assert_eq!(support::names_by_code(&store, "meters").await, expected, "{jobs:#?}");
    let info = store.dataset(&meters).await.unwrap().unwrap();
    assert_eq!((info.mode, info.key_property.as_deref(), info.feature_count), (DatasetMode::Upsert, Some("code"), 40));
    workers.into_iter().for_each(Running::stop);

    // A worker killed mid-load of a newer object: the previous content stays, whole.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    aws.s3.put(&ObjectPath::from(big), support::coded(0..200_000, "big").into()).await.unwrap();
    let first = upserting(&aws);
    wait_for_job(&store, "the load to start", |j| j.source == big && j.status == JobStatus::Running).await;
    first.kill();
    assert_eq!(support::names_by_code(&store, "meters").await, expected, "no partial rows");
    let second = upserting(&aws);
    let job = wait_for_job(&store, "the reload", |j| j.source == big && j.status.is_final()).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    let names = support::names_by_code(&store, "meters").await;
    assert_eq!((names.len(), names.values().all(|n| n == "big")), (200_000, true));

    // Deleting an object keeps the features it brought.
    aws.s3.delete(&ObjectPath::from(big)).await.unwrap();
    aws.replay(EventKind::Removed, big).await;
    let removal = wait_for_job(&store, "the removal", |j| {
        j.source == big && j.action == geoflow_store::JobAction::Remove && j.status.is_final()
    })
    .await;
    second.stop();
    assert_eq!(removal.result.as_ref().unwrap()["kept_rows"], 200_000, "{removal:#?}");
    assert_eq!(store.dataset(&meters).await.unwrap().unwrap().feature_count, 200_000);
    assert_eq!(aws.messages(&aws.dlq_url).await, 0);
}

/// In replace mode, a worker killed mid-load of a newer object leaves the dataset's previous
/// content; the load is done again once the message comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replace_killed_mid_load_on_s3_leaves_the_previous_content() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws_with(moto, 2, 10).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let roads = DatasetName::new("roads").unwrap();
    let (small, big) = ("raw/roads/2026-12-01/roads.geojson", "raw/roads/2026-12-02/roads.geojson");
    let replacing = |aws: &Aws| {
        Running(Some(aws.command("worker", db.url()).env("GEOFLOW_DATASET_MODE", "replace").spawn().unwrap()))
    };
    aws.s3.put(&ObjectPath::from(small), support::collection(40, 1).into()).await.unwrap();
    let first = replacing(&aws);
    wait_for_jobs(&store, 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    aws.s3.put(&ObjectPath::from(big), support::collection(200_000, 2).into()).await.unwrap();
    wait_for_job(&store, "the load to start", |j| j.source == big && j.status == JobStatus::Running).await;
    first.kill();
    let held = || async {
        let sources = store.sources(&roads).await.unwrap();
        sources.into_iter().map(|s| (s.source, s.feature_count)).collect::<Vec<_>>()
    };
    assert_eq!(held().await, [(small.to_string(), 40)]);
    assert_eq!(store.dataset(&roads).await.unwrap().unwrap().feature_count, 40);
    let second = replacing(&aws);
    let job = wait_for_job(&store, "the reload", |j| j.source == big && j.status.is_final()).await;
    second.stop();
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    assert_eq!(held().await, [(big.to_string(), 200_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_events_through_sqs_load_every_object_exactly_once_with_two_workers() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws(moto).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();

    let mut expected = Vec::new();
    for i in 0..50 {
        let dataset = ["roads", "parks", "rivers"][i % 3];
        let key = format!("raw/{dataset}/2026-11-22/file {i}.geojson");
        let n = 10 + i * 3;
        aws.s3.put(&ObjectPath::from(key.as_str()), support::collection(n, i).into()).await.unwrap();
        expected.push((dataset, key, n as u64));
    }
    let workers = [aws.worker(db.url()), aws.worker(db.url())];
    let jobs = wait_for_jobs(&store, 50).await;

    assert_eq!(jobs.len(), 50, "one job per object");
    assert!(jobs.iter().all(|j| j.status == JobStatus::Succeeded), "{jobs:#?}");
    for (dataset, key, n) in &expected {
        let source = store.source(&DatasetName::new(dataset).unwrap(), key).await.unwrap();
        let source = source.unwrap_or_else(|| panic!("{key} was not loaded"));
        assert_eq!(source.feature_count, *n, "{key}");
        assert!(source.version.object_version.is_some(), "the object's version is recorded");
    }
    let total: u64 = store.datasets().await.unwrap().iter().map(|d| d.feature_count).sum();
    assert_eq!(total, expected.iter().map(|e| e.2).sum::<u64>(), "every row once");

    // Every notification replayed twice: nothing changes.
    for (_, key, _) in &expected {
        aws.replay(EventKind::Created, key).await;
        aws.replay(EventKind::Created, key).await;
    }
    let jobs = wait_for_jobs(&store, 150).await;
    assert_eq!(jobs.iter().filter(|j| j.status == JobStatus::SkippedDuplicate).count(), 100);
    let again: u64 = store.datasets().await.unwrap().iter().map(|d| d.feature_count).sum();
    assert_eq!(again, total);

    // A truncated upload fails its job with a reason; a deletion removes that source's rows.
    aws.s3
        .put(
            &ObjectPath::from("raw/roads/2026-11-22/broken.geojson"),
            support::collection(5, 1)[..90].to_string().into(),
        )
        .await
        .unwrap();
    let removed = &expected[0];
    aws.s3.delete(&ObjectPath::from(removed.1.as_str())).await.unwrap();
    // moto sends no event for a delete marker (S3 sends ObjectRemoved:DeleteMarkerCreated).
    aws.replay(EventKind::Removed, &removed.1).await;
    let jobs = wait_for_jobs(&store, 152).await;
    let broken = jobs.iter().find(|j| j.source.ends_with("broken.geojson")).unwrap();
    assert_eq!(broken.status, JobStatus::Failed, "{broken:#?}");
    assert!(broken.error.as_deref().unwrap().contains("broken.geojson"), "{broken:#?}");
    let roads = DatasetName::new("roads").unwrap();
    assert!(store.source(&roads, "raw/roads/2026-11-22/broken.geojson").await.unwrap().is_none());
    assert!(store.source(&roads, &removed.1).await.unwrap().is_none(), "the deleted object's rows are gone");

    for w in workers {
        w.stop();
    }
    assert_eq!(aws.messages(&aws.queue_url).await, 0, "the queue is drained");
    assert_eq!(aws.messages(&aws.dlq_url).await, 0, "nothing was dead-lettered");
}

/// A TCP proxy in front of the database that can be taken down: connections through it are
/// cut and new ones refused, as when the database restarts or the network partitions.
struct Outage {
    port: u16,
    down: tokio::sync::watch::Sender<bool>,
}

impl Outage {
    /// A proxy in front of the database at `url`, and the URL that goes through it.
    async fn in_front_of(url: &str) -> (Outage, reqwest::Url) {
        let url = reqwest::Url::parse(url).unwrap();
        let target = std::net::SocketAddr::new(url.host_str().unwrap().parse().unwrap(), url.port().unwrap());
        let outage = Outage::start(target).await;
        let mut through = url;
        through.set_port(Some(outage.port)).unwrap();
        (outage, through)
    }

    async fn start(target: std::net::SocketAddr) -> Outage {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if *watch.borrow() {
                    continue; // dropped: refused
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Outage { port, down }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loads_during_a_database_outage_complete_when_it_returns() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws(moto).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let (outage, through) = Outage::in_front_of(db.url()).await;
    let workers = [aws.worker(through.as_str()), aws.worker(through.as_str())];
    // Both workers are connected and migrated before the database goes away.
    tokio::time::sleep(Duration::from_secs(2)).await;

    outage.down.send(true).unwrap();
    let keys: Vec<String> =
        (0..6).map(|i| format!("raw/{}/2026-11-22/outage {i}.geojson", ["roads", "parks"][i % 2])).collect();
    for (i, key) in keys.iter().enumerate() {
        aws.s3.put(&ObjectPath::from(key.as_str()), support::collection(50 + i, i).into()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    for (i, key) in keys.iter().enumerate() {
        let dataset = DatasetName::new(["roads", "parks"][i % 2]).unwrap();
        assert!(store.source(&dataset, key).await.unwrap().is_none(), "nothing loads while the database is away");
    }
    outage.down.send(false).unwrap();

    let jobs = wait_for_jobs(&store, 6).await;
    assert!(jobs.iter().all(|j| j.status == JobStatus::Succeeded), "{jobs:#?}");
    for (i, key) in keys.iter().enumerate() {
        let dataset = DatasetName::new(["roads", "parks"][i % 2]).unwrap();
        assert_eq!(store.source(&dataset, key).await.unwrap().map(|s| s.feature_count), Some(50 + i as u64), "{key}");
    }
    for w in workers {
        w.stop();
    }
    assert_eq!(aws.messages(&aws.queue_url).await, 0, "the queue is drained");
    assert_eq!(aws.messages(&aws.dlq_url).await, 0, "no message was dead-lettered by the outage");
}

/// A load cut off by an outage mid-way cannot record itself (the database is away): the next
/// attempt records it, so the history holds every attempt with its error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_cut_off_by_an_outage_is_in_the_history_with_its_error() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws(moto).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let (outage, through) = Outage::in_front_of(db.url()).await;
    let worker = aws.worker(through.as_str());
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let key = "raw/roads/2026-12-07/cut.geojson";
    aws.s3.put(&ObjectPath::from(key), support::collection(200_000, 1).into()).await.unwrap();
    // Cut while the rows are on their way in.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copying: i64 = client
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %' AND state = 'active'", &[])
            .await
            .unwrap()
            .get(0);
        if copying > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the load never reached its COPY");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    outage.down.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    outage.down.send(false).unwrap();

    let job = wait_for_job(&store, "the job to finish", |j| j.source == key && j.status.is_final()).await;
    worker.stop();
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    assert!(job.attempts >= 2, "the cut attempt counts: {job:#?}");
    let loads = client
        .query("SELECT status, error FROM geoflow.loads WHERE source_key = $1 ORDER BY id", &[&key])
        .await
        .unwrap();
    let history: Vec<(String, Option<String>)> = loads.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        history.iter().any(|(status, error)| status == "failed" && error.is_some()),
        "the cut attempt is recorded with its error: {history:?}"
    );
    assert_eq!(history.last().map(|(status, _)| status.as_str()), Some("loaded"), "{history:?}");
    assert_eq!(store.source(&DatasetName::new("roads").unwrap(), key).await.unwrap().unwrap().feature_count, 200_000);
}

async fn wait_for_job(store: &dyn Store, what: &str, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let jobs = store.jobs(&JobQuery::default()).await.unwrap();
        if let Some(job) = jobs.iter().find(|j| done(j)) {
            return job.clone();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {jobs:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_load_is_replaced_and_a_message_that_keeps_crashing_is_dead_lettered() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws_with(moto, 2, 3).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let roads = DatasetName::new("roads").unwrap();

    // Killed once mid-load: the message comes back after its visibility timeout and another
    // worker loads the source exactly once.
    let key = "raw/roads/2026-11-22/big.geojson";
    aws.s3.put(&ObjectPath::from(key), support::collection(200_000, 1).into()).await.unwrap();
    let first = aws.worker(db.url());
    wait_for_job(&store, "the load to start", |j| j.status == JobStatus::Running).await;
    first.kill();
    assert!(store.source(&roads, key).await.unwrap().is_none(), "no partial rows");
    let second = aws.worker(db.url());
    let job = wait_for_job(&store, "the reload", |j| j.status.is_final()).await;
    second.stop();
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    assert!(job.attempts >= 2, "{job:#?}");
    assert_eq!(store.source(&roads, key).await.unwrap().map(|s| s.feature_count), Some(200_000));

    // Killed on every receive: once over the queue's maximum receive count, its redrive policy
    // moves the message aside. (A receive still in flight when a worker dies can take the
    // message too, so the number of kills needed varies.)
    let crashing = "raw/roads/2026-11-22/crashing.geojson";
    aws.s3.put(&ObjectPath::from(crashing), support::collection(200_000, 2).into()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut kills = 0;
    while aws.messages(&aws.dlq_url).await == 0 {
        assert!(Instant::now() < deadline, "the crashing message never reached the dead-letter queue");
        let worker = aws.worker(db.url());
        let started = Instant::now();
        loop {
            let running = store
                .jobs(&JobQuery::default())
                .await
                .unwrap()
                .iter()
                .any(|j| j.source == crashing && j.status == JobStatus::Running && j.attempts > kills);
            if running || aws.messages(&aws.dlq_url).await > 0 || started.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.kill();
        kills += 1;
    }
    assert!(kills >= 2, "dead-lettered after {kills} crash(es) with a maximum receive count of 3");
    assert!(store.source(&roads, crashing).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_through_the_api_load_once_and_readiness_follows_the_database() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws(moto).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let (outage, through) = Outage::in_front_of(db.url()).await;
    let worker = aws.worker(db.url());
    let (api, base) = aws.api(through.as_str()).await;
    let http = reqwest::Client::new();

    // The bucket notifies the queue of the upload too; that event must not make a second job.
    let response = http
        .post(format!("{base}/v1/datasets/roads/uploads?name=roads.geojson&on_invalid=reject"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/geo+json")
        .body(support::collection(40, 7))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: serde_json::Value = response.json().await.unwrap();
    let key = accepted["source"].as_str().unwrap().to_string();
    let job = wait_for_job(&store, "the upload's load", |j| j.source == key && j.status.is_final()).await;
    assert_eq!((job.id.as_str(), job.status), (accepted["id"].as_str().unwrap(), JobStatus::Succeeded), "{job:#?}");
    let roads = DatasetName::new("roads").unwrap();
    assert_eq!(store.source(&roads, &key).await.unwrap().map(|s| s.feature_count), Some(40));
    let deadline = Instant::now() + Duration::from_secs(30);
    while aws.messages(&aws.queue_url).await > 0 {
        assert!(Instant::now() < deadline, "the queue was not drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let jobs = store.jobs(&JobQuery::default()).await.unwrap();
    assert_eq!(jobs.len(), 1, "one upload, one job: {jobs:#?}");
    let served: serde_json::Value =
        http.get(format!("{base}/v1/jobs/{}", job.id)).send().await.unwrap().json().await.unwrap();
    assert_eq!(served["status"], "succeeded");

    // The day's report goes to the bucket (a whole-object PUT), and the API lists and serves it.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let out = aws.command("report", db.url()).args(["--date", &today]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = http.get(format!("{base}/v1/reports")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["reports"][0]["date"], today.as_str(), "{listed}");
    let report: serde_json::Value =
        http.get(format!("{base}/v1/reports/{today}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (report["totals"]["loads"]["succeeded"].as_u64(), report["totals"]["features"]["loaded"].as_u64()),
        (Some(1), Some(40))
    );

    // Readiness follows the database: 503 while it is away, 200 once it is back.
    outage.down.send(true).unwrap();
    let readiness = || async { http.get(format!("{base}/readyz")).send().await.unwrap() };
    let down = readiness().await;
    assert_eq!(down.status(), 503);
    assert_eq!(down.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = down.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("database"), "{problem}");
    outage.down.send(false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readiness().await.status() != 200 {
        assert!(Instant::now() < deadline, "readiness did not come back with the database");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.stop();
    worker.stop();
}

/// Overwrites, deletes and recreations racing the load of a large first version, on a
/// versioned bucket with two worker processes: whatever the moment, the dataset ends holding
/// what the bucket holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overwrites_and_deletes_racing_a_load_leave_the_dataset_equal_to_storage() {
    use support::race::{self, Change};
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws_with(moto, 30, 10).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let workers = [aws.worker(db.url()), aws.worker(db.url())];
    let apply = |change: Change| async {
        match change {
            Change::Put { key, body } => {
                aws.s3.put(&ObjectPath::from(key.as_str()), body.into()).await.unwrap();
            }
            Change::Delete { key } => {
                aws.s3.delete(&ObjectPath::from(key.as_str())).await.unwrap();
                // moto sends no event for a delete marker (S3 sends ObjectRemoved:DeleteMarkerCreated).
                aws.replay(EventKind::Removed, &key).await;
            }
        }
    };
    let trials = race::run_trials(&store, Duration::from_millis(2000), apply).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while aws.messages(&aws.queue_url).await > 0 {
        assert!(Instant::now() < deadline, "the queue was not drained");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for w in workers {
        w.stop();
    }
    race::assert_store_equals_storage(&store, &trials).await;
    let jobs = store.jobs(&JobQuery { limit: 1000, ..JobQuery::default() }).await.unwrap();
    assert!(jobs.iter().all(|j| j.status != JobStatus::Failed), "no job failed: {jobs:#?}");
    assert!(jobs.iter().any(|j| j.status == JobStatus::Superseded), "some load was superseded: {jobs:#?}");
    assert_eq!(aws.messages(&aws.dlq_url).await, 0, "nothing was dead-lettered");
}

/// An HTTP proxy in front of moto that answers `500` to S3 requests for one bucket while it
/// is failing, and forwards everything else.
struct S3Faults {
    port: u16,
    failing: tokio::sync::watch::Sender<bool>,
}

impl S3Faults {
    async fn in_front_of(endpoint: &str, bucket: &str) -> S3Faults {
        let target: std::net::SocketAddr = endpoint.trim_start_matches("http://").parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (failing, watch) = tokio::sync::watch::channel(false);
        let prefix = format!(" /{bucket}");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let (watch, prefix) = (watch.clone(), prefix.clone());
                tokio::spawn(async move {
                    // Each connection is judged by its first request line; failing answers
                    // close the connection, so a client's next request opens a new one.
                    let mut head = vec![0u8; 4096];
                    let Ok(n) = client.read(&mut head).await else { return };
                    let line = String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_string();
                    if *watch.borrow() && line.contains(&prefix) {
                        let _ = client
                            .write_all(
                                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                            )
                            .await;
                        return;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else { return };
                    if server.write_all(&head[..n]).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        S3Faults { port, failing }
    }
}

/// Each class of fault, injected for real, ends where its class says: bad input and internal
/// faults fail their job at the first attempt and are acknowledged; passing faults are retried
/// until they pass; nothing reaches the dead-letter queue. The API answers by class too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_keep_their_class_from_the_store_to_the_queue_and_the_http_status() {
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws_with(moto, 10, 3).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let faults = S3Faults::in_front_of(aws.moto.endpoint_url(), &aws.bucket).await;
    let (admin, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    // Lock waits give up after half a second, as a statement_timeout-bound service would.
    let separator = if db.url().contains('?') { '&' } else { '?' };
    let worker_url = format!("{}{separator}options=-c%20lock_timeout%3D500", db.url());
    let worker = {
        let mut command = aws.command("worker", &worker_url);
        // Object storage through the proxy; the queue straight to moto.
        command
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", faults.port))
            .env("AWS_ENDPOINT_URL_SQS", aws.moto.endpoint_url());
        Running(Some(command.spawn().unwrap()))
    };
    let put = |key: &'static str, body: String| {
        let s3 = aws.s3.clone();
        async move { s3.put(&ObjectPath::from(key), body.into()).await.unwrap() }
    };
    let job_of = |key: &'static str| wait_for_job(&store, key, move |j| j.source == key && j.status.is_final());

    // Bad input the store cannot hold: a NUL in a property is that feature's problem.
    let nul = support::collection(3, 1).replacen("\"name\":\"f1-1\"", "\"name\":\"f1\\u00001\"", 1);
    put("raw/nul/2026-12-06/a.geojson", nul).await;
    let job = job_of("raw/nul/2026-12-06/a.geojson").await;
    let result = job.result.clone().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1), "{job:#?}");
    assert_eq!((result["features_loaded"].as_u64(), result["skipped"].as_u64()), (Some(2), Some(1)), "{result}");
    assert_eq!(result["errors"][0]["code"], "unstorable-text", "{result}");

    // More keys than a table holds columns for: those beyond are kept in the overflow column.
    let keys: Vec<String> = (0..2000).map(|k| format!("\"k{k}\":{k}")).collect();
    let wide = format!(
        r#"{{"type":"Feature","properties":{{{}}},"geometry":{{"type":"Point","coordinates":[1,2]}}}}"#,
        keys.join(",")
    );
    put("raw/wide/2026-12-06/a.geojson", wide).await;
    let job = job_of("raw/wide/2026-12-06/a.geojson").await;
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1), "{job:#?}");
    let wide = store.dataset(&DatasetName::new("wide").unwrap()).await.unwrap().unwrap();
    assert_eq!((wide.feature_count, wide.columns.len()), (1, 2000));
    assert!(wide.columns.iter().any(|c| c.column == "gf_overflow"), "{:?}", &wide.columns[1990..]);

    // A dataset table altered underneath geoflow: an internal fault, failed at once.
    put("raw/altered/2026-12-06/a.geojson", support::collection(5, 2)).await;
    assert_eq!(job_of("raw/altered/2026-12-06/a.geojson").await.status, JobStatus::Succeeded);
    admin.batch_execute("ALTER TABLE datasets.altered DROP COLUMN label").await.unwrap();
    put("raw/altered/2026-12-06/b.geojson", support::collection(5, 3)).await;
    let job = job_of("raw/altered/2026-12-06/b.geojson").await;
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 1), "{job:#?}");
    assert_eq!(job.result.as_ref().unwrap()["error_class"], "internal", "{job:#?}");
    assert!(job.load_id.is_some(), "the failed load is in the history: {job:#?}");

    // The dataset's lock held elsewhere: lock timeouts pass, the load follows.
    let (locker, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    locker.execute("SELECT pg_advisory_lock(hashtextextended('geoflow.dataset:locked', 0))", &[]).await.unwrap();
    let locked = "raw/locked/2026-12-06/a.geojson";
    put(locked, support::collection(5, 4)).await;
    wait_for_job(&store, "a retry behind the lock", |j| j.source == locked && j.attempts >= 2).await;
    locker.execute("SELECT pg_advisory_unlock_all()", &[]).await.unwrap();
    let job = job_of("raw/locked/2026-12-06/a.geojson").await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    assert!(job.attempts >= 2, "retried while the lock was held: {job:#?}");

    // The load's backend terminated mid-COPY: retried, loaded once, the failure in the history.
    put("raw/terminated/2026-12-06/a.geojson", support::collection(200_000, 5)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'COPY %terminated%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if killed > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the load never reached its COPY");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job = job_of("raw/terminated/2026-12-06/a.geojson").await;
    assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
    let terminated = DatasetName::new("terminated").unwrap();
    let key = "raw/terminated/2026-12-06/a.geojson";
    assert_eq!(store.source(&terminated, key).await.unwrap().map(|s| s.feature_count), Some(200_000));
    let failed: i64 = admin
        .query_one("SELECT count(*) FROM geoflow.loads WHERE dataset = 'terminated' AND status = 'failed'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(failed >= 1, "the rolled-back attempt is in the load history");

    // Object storage answering 500: retried until it answers.
    faults.failing.send(true).unwrap();
    put("raw/flaky/2026-12-06/a.geojson", support::collection(5, 6)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    faults.failing.send(false).unwrap();
    assert_eq!(job_of("raw/flaky/2026-12-06/a.geojson").await.status, JobStatus::Succeeded);

    worker.stop();
    assert_eq!(aws.messages(&aws.queue_url).await, 0, "every message was acknowledged");
    assert_eq!(aws.messages(&aws.dlq_url).await, 0, "no fault reached the dead-letter queue");

    // The API: 4xx for the client's faults, checked before any work; 503 without details
    // when the database is away.
    let (outage, through) = Outage::in_front_of(db.url()).await;
    let (api, base) = aws.api(through.as_str()).await;
    let http = reqwest::Client::new();
    let upload = |path: String| http.post(format!("{base}{path}")).bearer_auth(TOKEN).body(support::collection(1, 1));
    for (path, why) in [
        ("/v1/datasets/geoflow_jobs/uploads".to_string(), "reserved"),
        ("/v1/datasets/gpkg_contents/uploads".to_string(), "reserved"),
        (format!("/v1/datasets/roads/uploads?name={}", "%25".repeat(100)), "escaped"),
    ] {
        let response = upload(path.clone()).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert!(response.text().await.unwrap().contains(why), "{path}");
    }
    let nul_filter = http.get(format!("{base}/collections/nul/items?name=a%00b")).send().await.unwrap();
    assert_eq!(nul_filter.status(), 400);
    outage.down.send(true).unwrap();
    let down = http.get(format!("{base}/v1/jobs")).send().await.unwrap();
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    let detail = down.text().await.unwrap();
    assert!(!detail.contains("127.0.0.1") && !detail.contains(db.name()), "no host or database name: {detail}");
    outage.down.send(false).unwrap();
    api.stop();
}

/// `ogr2ogr -f <driver> <out> <src> [extra…]`.
fn ogr2ogr(driver: &str, out: &std::path::Path, src: &std::path::Path, extra: &[&str]) {
    let run =
        std::process::Command::new("ogr2ogr").args(["-f", driver]).arg(out).arg(src).args(extra).output().unwrap();
    assert!(run.status.success(), "ogr2ogr -f {driver}: {}", String::from_utf8_lossy(&run.stderr));
}

/// Files in other formats and CRSs, as S3 objects and as uploads: each loads through the
/// worker (spooled, unpacked in its spool folder, transformed by PROJ), the job's summary
/// names the format and the source CRS, a file of a format geoflow does not read fails for
/// good without a retry or the dead-letter queue, and nothing is left in the spool folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_formats_and_crs_on_s3_load_through_events_and_uploads() {
    if !support::have_tool("ogr2ogr") {
        return;
    }
    let (Some(moto), Some(db)) = (moto_server().await, postgis_database().await) else { return };
    let aws = aws(moto).await;
    let store = PostgisStore::connect(db.url()).await.unwrap();
    let spool = support::scratch();
    let tmp = support::scratch();
    // 12 points around London, written in the British National Grid.
    let source = tmp.path().join("sites.geojson");
    let features: Vec<String> = (0..12)
        .map(|i| {
            let (lon, lat) = (-0.5 + i as f64 * 0.05, 51.3 + i as f64 * 0.02);
            format!(r#"{{"type":"Feature","properties":{{"site":{i},"name":"site {i}"}},"geometry":{{"type":"Point","coordinates":[{lon},{lat}]}}}}"#)
        })
        .collect();
    std::fs::write(&source, format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(","))).unwrap();
    let gpkg = tmp.path().join("sites.gpkg");
    ogr2ogr("GPKG", &gpkg, &source, &["-t_srs", "EPSG:27700"]);
    let shp = tmp.path().join("shp");
    std::fs::create_dir_all(&shp).unwrap();
    ogr2ogr("ESRI Shapefile", &shp.join("sites.shp"), &source, &["-t_srs", "EPSG:27700"]);
    let zip = tmp.path().join("sites.zip");
    let script = "import sys, zipfile, pathlib\n\
        with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
        \x20   for p in pathlib.Path(sys.argv[2]).iterdir(): z.write(p, p.name)\n";
    let zipped =
        std::process::Command::new("/usr/bin/python3").args(["-c", script]).arg(&zip).arg(&shp).output().unwrap();
    assert!(zipped.status.success(), "{}", String::from_utf8_lossy(&zipped.stderr));

    let objects = [
        ("raw/sites_gpkg/2026-12-01/sites.gpkg", std::fs::read(&gpkg).unwrap()),
        ("raw/sites_shp/2026-12-01/sites.zip", std::fs::read(&zip).unwrap()),
        ("raw/sites_kml/2026-12-01/sites.geojson", b"<?xml version=\"1.0\"?><kml/>".to_vec()),
    ];
    for (key, bytes) in &objects {
        aws.s3.put(&ObjectPath::from(*key), bytes.clone().into()).await.unwrap();
    }
    let worker = aws.command("worker", db.url()).env("GEOFLOW_SPOOL_DIR", spool.path()).spawn().unwrap();
    let _worker = Running(Some(worker));
    let (_api, base) = aws.api(db.url()).await;
    // CSV in Web Mercator metres, with semicolons, through the API.
    let csv: String = std::iter::once("name;x;y".to_string())
        .chain((0..5).map(|i| format!("p{i};{};{}", -55659.75 + i as f64 * 1000.0, 6677165.6 + i as f64 * 1000.0)))
        .collect::<Vec<_>>()
        .join("\n");
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/datasets/sites_csv/uploads?name=sites.csv&source_crs=EPSG:3857&csv_delimiter=%3B"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    let jobs = wait_for_jobs(&store, 4).await;
    let job =
        |dataset: &str| jobs.iter().find(|j| j.dataset.as_str() == dataset).unwrap_or_else(|| panic!("{jobs:#?}"));
    for (dataset, format, crs, count) in [
        ("sites_gpkg", "GeoPackage", "EPSG:27700", 12),
        ("sites_shp", "Shapefile", "EPSG:27700", 12),
        ("sites_csv", "CSV", "EPSG:3857", 5),
    ] {
        let job = job(dataset);
        assert_eq!(job.status, JobStatus::Succeeded, "{job:#?}");
        let result = job.result.as_ref().unwrap();
        assert_eq!(result["format"], format, "{result}");
        assert!(result["source_crs"].as_str().unwrap().starts_with(crs), "{result}");
        assert_eq!(result["features_loaded"], count, "{result}");
        let name = DatasetName::new(dataset).unwrap();
        let extent = store.dataset(&name).await.unwrap().unwrap().bbox.unwrap();
        assert!(extent.min_x > -0.6 && extent.max_x < 0.2 && extent.min_y > 51.0 && extent.max_y < 51.7, "{extent:?}");
    }
    let kml = job("sites_kml");
    assert_eq!(kml.status, JobStatus::Failed, "{kml:#?}");
    assert!(kml.error.as_deref().unwrap_or_default().contains("a KML document"), "{kml:#?}");
    assert_eq!(kml.attempts, 1, "bad input is not retried: {kml:#?}");
    assert_eq!(aws.messages(&aws.dlq_url).await, 0);
    let left: Vec<_> = std::fs::read_dir(spool.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the spool folder keeps {left:?}");
}
