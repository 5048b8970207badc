//! The worker: queue messages in, exact loads out.
//!
//! Each message names objects that were created or removed. The worker brings the dataset in
//! line with what storage holds *now* for that key: an object that exists is loaded (if its
//! version is not the one already loaded), an object that does not is removed. So a
//! duplicate, late or out-of-order event changes nothing, and at-least-once delivery gives
//! exactly-once effect (DESIGN §3).
//!
//! Errors have classes. Bad input fails the job with its report and the message is
//! acknowledged. Infrastructure faults (storage, database, queue) release the message for a
//! retry with exponential backoff; the queue moves a message that keeps failing — or keeps
//! crashing its worker — to its dead-letter queue after its maximum receive count.
//! A message is deleted only after its effect is committed.

pub mod inbox;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use geoflow_core::dataset::{DatasetMode, DatasetName, FeatureKey};
use geoflow_core::geometry_type::GeometryType;
use geoflow_core::report::{LoadCounts, Policy};
use geoflow_core::schema::SchemaPolicy;
use geoflow_queue::{Delivery, Queue, Receipt, MAX_BATCH};
use geoflow_store::protocol::{load_settings, same_settings, Origin};
use geoflow_store::{
    ErrorClass, Job, JobAction, JobStatus, JobUpdate, LoadPlan, LoadResult, NewJob, Removal, RemovalCause,
    SourceRecord, SourceVersion, Store, StoreError,
};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::events::{self, EventKind, ObjectEvent};
use crate::ingest::{ingest, IngestRequest, IngestSummary, Input, Progress, ReadChoices, Status};
use crate::storage::{object_modified, object_version, Storage, StoredObject};
use geoflow_formats::ReadOptions;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Loads in flight at once.
    pub concurrency: usize,
    /// How long a received message stays hidden from other workers; a heartbeat renews it
    /// while its load runs.
    pub visibility: Duration,
    /// Longest wait of one receive (long polling).
    pub wait: Duration,
    /// On shutdown, how long in-flight loads may take to finish before their messages are
    /// released to other workers.
    pub grace: Duration,
    /// First retry delay after a transient error; doubles with each retry, up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// How long a transient fault (a database restarting, a storage hiccup) is retried while
    /// the message is held, before it is released: outages shorter than this cost no
    /// receives, so they never push a message towards the dead-letter queue.
    pub retry_in_place: Duration,
    pub policy: Policy,
    /// The schema policy of loads whose event asks for none.
    pub schema_policy: SchemaPolicy,
    /// The geometry type of loads whose event asks for none.
    pub geometry_type: GeometryType,
    /// How to read sources whose event chooses nothing (their CRS, the layer, CSV columns).
    pub read: ReadChoices,
    /// The mode of datasets created by events that ask for none (bucket notifications, the
    /// inbox).
    pub mode: DatasetMode,
    /// In upsert mode, what keys the features of datasets created by events that name no key.
    pub key: FeatureKey,
    /// Where remote objects are spooled while they load.
    pub spool_dir: PathBuf,
    /// Parsing threads per load.
    pub parse_threads: usize,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 2,
            visibility: Duration::from_secs(60),
            wait: Duration::from_secs(20),
            grace: Duration::from_secs(60),
            retry_delay: Duration::from_secs(5),
            max_retry_delay: Duration::from_secs(900),
            retry_in_place: Duration::from_secs(120),
            policy: Policy::Skip,
            schema_policy: SchemaPolicy::Widen,
            geometry_type: GeometryType::Auto,
            read: ReadChoices::default(),
            mode: DatasetMode::default(),
            key: FeatureKey::FeatureId,
            spool_dir: std::env::temp_dir(),
            parse_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What becomes of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Its effect is committed (or it asks for nothing that can ever succeed): delete it.
    Ack,
    /// A transient fault: give it back for a retry after the delay.
    Retry { delay: Duration, reason: String },
}

/// Consumes one queue into one store from one object storage.
#[derive(Clone)]
pub struct Worker {
    pub queue: Arc<dyn Queue>,
    pub store: Arc<dyn Store>,
    pub storage: Storage,
    pub options: WorkerOptions,
}

impl Worker {
    /// Runs until `shutdown` completes, then stops receiving and lets in-flight loads finish
    /// within the grace period. Loads still running then are cancelled (a PostGIS transaction
    /// rolls back; one that manages to commit is harmless, loads replace) and their messages
    /// are released to other workers at once.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        // Copies of objects spooled by a worker that was killed mid-load are nobody's now.
        match crate::storage::clean_spool(&self.options.spool_dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, dir = %self.options.spool_dir.display(), "removed stale spool files"),
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.options.spool_dir.display(), "could not clean the spool folder")
            }
        }
        let slots = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        // Receipts of the messages being handled, to release them if shutdown cuts them short.
        let in_flight: Arc<Mutex<HashMap<String, Receipt>>> = Arc::default();
        let mut receive_failures = 0u32;
        tokio::pin!(shutdown);
        loop {
            let first = tokio::select! {
                _ = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => slot?,
            };
            let max = (1 + slots.available_permits()).min(MAX_BATCH);
            let received = tokio::select! {
                _ = &mut shutdown => break,
                r = self.queue.receive(max, self.options.wait) => r,
            };
            let deliveries = match received {
                Ok(d) => {
                    receive_failures = 0;
                    d
                }
                Err(e) if e.is_transient() => {
                    receive_failures += 1;
                    let delay = backoff(self.options.retry_delay, receive_failures).min(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "receiving from the queue failed");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
                Err(e) => return Err(anyhow::Error::new(e).context("receiving from the queue")),
            };
            let mut first = Some(first);
            for delivery in deliveries {
                let slot = match first.take() {
                    Some(slot) => slot,
                    None => slots.clone().acquire_owned().await?,
                };
                let (worker, in_flight) = (self.clone(), in_flight.clone());
                let span =
                    tracing::info_span!("message", message_id = %delivery.id, receive_count = delivery.receive_count);
                lock(&in_flight).insert(delivery.id.clone(), delivery.receipt.clone());
                tasks.spawn(
                    async move {
                        let id = delivery.id.clone();
                        worker.handle(delivery).await;
                        lock(&in_flight).remove(&id);
                        drop(slot);
                    }
                    .instrument(span),
                );
            }
            while let Some(done) = tasks.try_join_next() {
                log_task_end(done);
            }
        }
        tracing::info!(
            in_flight = tasks.len(),
            grace_s = self.options.grace.as_secs(),
            "shutting down: no more receives"
        );
        let drained = tokio::time::timeout(self.options.grace, async {
            while let Some(done) = tasks.join_next().await {
                log_task_end(done);
            }
        })
        .await;
        if drained.is_err() {
            // Dropping a load's task rolls its transaction back; its message goes back to the
            // queue at once for another worker.
            tracing::warn!(
                aborted = tasks.len(),
                "grace period over: in-flight loads abandoned, their messages return to the queue"
            );
            tasks.shutdown().await;
            let abandoned: Vec<Receipt> = lock(&in_flight).drain().map(|(_, r)| r).collect();
            for receipt in abandoned {
                if let Err(e) = self.queue.release(&receipt, Duration::ZERO).await {
                    tracing::warn!(error = %e, "could not release an abandoned message; it returns after its visibility timeout");
                }
            }
        }
        Ok(())
    }

    /// Receives at most one batch (waiting up to `wait`) and handles it to the end: the
    /// step-by-step way to drive a worker. Returns how many messages were handled.
    pub async fn try_execute_task(&self, wait: Duration) -> anyhow::Result<usize> {
        let deliveries = self.queue.receive(self.options.concurrency.clamp(1, MAX_BATCH), wait).await?;
        let n = deliveries.len();
        let handles: Vec<_> = deliveries.into_iter().map(|d| self.handle(d)).collect();
        futures_util::future::join_all(handles).await;
        Ok(n)
    }

    /// Processes one message while renewing its visibility, then deletes or releases it.
    async fn handle(&self, delivery: Delivery) {
        let _in_flight = crate::metrics::InFlight::start();
        crate::metrics::message_received(delivery.sent_at);
        let heartbeat = async {
            let every = (self.options.visibility / 3).max(Duration::from_millis(200));
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = self.queue.extend(&delivery.receipt, self.options.visibility).await {
                    tracing::warn!(error = %e, "could not extend the message's visibility");
                }
            }
        };
        // The heartbeat lives in the same task: if processing panics, it stops too, and the
        // message comes back when its visibility ends.
        let disposition = tokio::select! {
            d = self.process(&delivery) => d,
            _ = heartbeat => unreachable!("the heartbeat never ends"),
        };
        let done = match &disposition {
            Disposition::Ack => self.queue.delete(&delivery.receipt).await,
            Disposition::Retry { delay, reason } => {
                tracing::warn!(retry_in_s = delay.as_secs(), %reason, "transient failure: the message will be retried");
                self.queue.release(&delivery.receipt, *delay).await
            }
        };
        if let Err(e) = done {
            // The message comes back after its visibility timeout; its effect is idempotent.
            tracing::warn!(error = %e, ?disposition, "could not settle the message with the queue");
        }
    }

    /// What one message asks for, done.
    pub async fn process(&self, delivery: &Delivery) -> Disposition {
        let events = match events::parse(&delivery.body, &self.storage.prefix) {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(reason = %e, "unusable message dropped");
                return Disposition::Ack;
            }
        };
        let several = events.len() > 1;
        let mut disposition = Disposition::Ack;
        for (n, event) in events.into_iter().enumerate() {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(record = n, reason = %e, "unusable event dropped");
                    continue;
                }
            };
            // One job per event, the same on every delivery of the message; the API chose
            // the job of events it asked for.
            let job_id = match &event.tag {
                Some(tag) => tag.job.clone(),
                None if several => format!("{}-{n}", delivery.id),
                None => delivery.id.clone(),
            };
            let span = tracing::info_span!("job", job_id = %job_id, dataset = %event.dataset, key = %event.key);
            if let d @ Disposition::Retry { .. } =
                self.process_event(&job_id, &event, delivery.receive_count).instrument(span).await
            {
                disposition = d;
            }
        }
        disposition
    }

    /// Processes one event, retrying transient faults in place for a while.
    async fn process_event(&self, job_id: &str, event: &ObjectEvent, receive_count: u32) -> Disposition {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        // Loads rolled back while the database was away, not yet in the load history.
        let mut unrecorded: Vec<(LoadPlan, LoadResult)> = Vec::new();
        let mut last_reason: Option<String> = None;
        loop {
            attempt += 1;
            let mut still = Vec::new();
            for (plan, result) in unrecorded.drain(..) {
                if self.store.record_failure(&plan, &result).await.is_err() {
                    still.push((plan, result));
                }
            }
            unrecorded = still;
            match self.attempt_event(job_id, event, last_reason.as_deref()).await {
                Ok(()) => return Disposition::Ack,
                Err(Retrying { reason, unrecorded_load }) => {
                    unrecorded.extend(unrecorded_load.map(|load| *load));
                    let delay = backoff(self.options.retry_delay, attempt).min(self.options.max_retry_delay);
                    if started.elapsed() + delay > self.options.retry_in_place {
                        let delay = backoff(self.options.retry_delay, receive_count).min(self.options.max_retry_delay);
                        for (plan, result) in &unrecorded {
                            // The last chance to keep it: the message goes back to the queue.
                            if let Err(e) = self.store.record_failure(plan, result).await {
                                tracing::warn!(error = %e, "could not record a rolled-back load");
                            }
                        }
                        return Disposition::Retry { delay, reason };
                    }
                    tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "transient failure: retrying");
                    last_reason = Some(reason);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt at an event: `Err` on a transient fault. `retried` is the reason the
    /// previous attempt failed, which the job shows while it runs again (recording it may
    /// have failed with the store).
    async fn attempt_event(&self, job_id: &str, event: &ObjectEvent, retried: Option<&str>) -> Result<(), Retrying> {
        if event.tag.is_none() && event.kind == EventKind::Created {
            // A bucket that notifies the queue itself reports API uploads too; the upload's
            // own message carries its job and options, so this event adds nothing.
            match self.storage.upload_job(&event.key).await {
                Ok(Some(upload_job)) => {
                    tracing::info!(%upload_job, "the object came through the upload API: its own message loads it");
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => return Err(Retrying::new(format!("reading object {}: {e}", event.key))),
            }
        }
        let new = NewJob {
            id: job_id.to_string(),
            dataset: event.dataset.clone(),
            source: event.key.clone(),
            action: match event.kind {
                EventKind::Created => JobAction::Load,
                EventKind::Removed => JobAction::Remove,
            },
            object_version: event.version_id.clone(),
        };
        let job = match self.store.upsert_job(&new).await {
            Ok(job) => job,
            Err(e) => return Err(Retrying::new(format!("recording the job: {e}"))),
        };
        if job.status.is_final() {
            tracing::info!(status = job.status.as_str(), "job already finished: duplicate delivery");
            return Ok(());
        }
        let running = JobUpdate {
            status: Some(JobStatus::Running),
            error: retried.map(|reason| Some(reason.to_string())),
            ..JobUpdate::default()
        };
        let job = match self.store.update_job(job_id, running).await {
            Ok(job) => job,
            Err(e) => return Err(Retrying::new(format!("starting the job: {e}"))),
        };
        tracing::info!(action = ?new.action, attempt = job.attempts, "job running");
        let started = std::time::Instant::now();
        let outcome = self.sync(&job, event).await;
        let update = match outcome {
            Outcome::Done { status, load_id, error, result } => {
                crate::metrics::job_finished(new.action, status, started.elapsed());
                tracing::info!(status = status.as_str(), error = error.as_deref().unwrap_or(""), "job finished");
                JobUpdate { status: Some(status), load_id, error: Some(error), result: Some(result) }
            }
            Outcome::Transient(retrying) => {
                let update = JobUpdate {
                    status: Some(JobStatus::Queued),
                    error: Some(Some(retrying.reason.clone())),
                    ..JobUpdate::default()
                };
                // The store may be the thing that is down: the retry matters, the record less
                // (the next attempt shows the reason again).
                let _ = self.store.update_job(job_id, update).await;
                return Err(retrying);
            }
        };
        self.store
            .update_job(job_id, update)
            .await
            .map(drop)
            .map_err(|e| Retrying::new(format!("finishing the job: {e}")))
    }

    /// Makes the dataset hold what storage holds now under the event's key.
    async fn sync(&self, job: &Job, event: &ObjectEvent) -> Outcome {
        let meta = match self.storage.head(&event.key).await {
            Ok(meta) => meta,
            Err(e) => return Outcome::storage(format!("reading object {}", event.key), &e),
        };
        let Some(meta) = meta else { return self.remove(event).await };
        if event.kind == EventKind::Removed {
            tracing::info!("the object exists again: loading it instead of removing it");
        }
        let force = event.tag.as_ref().is_some_and(|tag| tag.force);
        if let Some(version) = object_version(&meta).filter(|_| !force) {
            // Read under the dataset's lock: "already loaded" then cannot be undone by a load
            // of an older version that is about to commit.
            match self.store.settled_source(&event.dataset, &event.key).await {
                Ok(Some(loaded)) if loaded.version.object_version.as_deref() == Some(version.as_str()) => {
                    match self.settings_of(event).await {
                        Ok(settings) if same_settings(loaded.settings.as_deref(), &settings) => {
                            return already_loaded(job, &loaded, &version);
                        }
                        Ok(_) => {}
                        Err(e) => return Outcome::store("reading the catalog", e),
                    }
                }
                Ok(_) => {}
                Err(e) => return Outcome::store("reading the catalog", e),
            }
        }
        self.load(event).await
    }

    /// The settings a load of the event's object would be recorded with.
    async fn settings_of(&self, event: &ObjectEvent) -> Result<String, StoreError> {
        let (mode, key) = match self.store.dataset(&event.dataset).await? {
            Some(dataset) => (dataset.mode, FeatureKey::from_property(dataset.key_property)),
            None => (self.mode_asked(event), self.key_asked(event)),
        };
        let read = self.read_asked(event).settings();
        Ok(load_settings(self.policy_asked(event), mode, &key, self.geometry_type_asked(event), &read))
    }

    /// How to read the event's object: what its upload chose, else the configuration's.
    fn read_asked(&self, event: &ObjectEvent) -> ReadOptions {
        let choices =
            event.tag.as_ref().map_or_else(|| self.options.read.clone(), |tag| tag.read.or(&self.options.read));
        let mut read = ReadOptions { scratch_dir: Some(self.options.spool_dir.clone()), ..ReadOptions::default() };
        choices.apply(&mut read);
        read
    }

    fn key_asked(&self, event: &ObjectEvent) -> FeatureKey {
        match event.tag.as_ref().and_then(|tag| tag.key.clone()) {
            Some(property) => FeatureKey::Property(property),
            None => self.options.key.clone(),
        }
    }

    fn geometry_type_asked(&self, event: &ObjectEvent) -> GeometryType {
        event.tag.as_ref().and_then(|tag| tag.geometry_type).unwrap_or(self.options.geometry_type)
    }

    fn policy_asked(&self, event: &ObjectEvent) -> Policy {
        event.tag.as_ref().map_or(self.options.policy, |tag| tag.on_invalid)
    }

    fn mode_asked(&self, event: &ObjectEvent) -> DatasetMode {
        event.tag.as_ref().and_then(|tag| tag.mode).unwrap_or(self.options.mode)
    }

    async fn load(&self, event: &ObjectEvent) -> Outcome {
        let fetched = match self.storage.fetch(&event.key, &self.options.spool_dir).await {
            Ok(Some(f)) => f,
            // Deleted between the two calls: the removal event follows; act on it now.
            Ok(None) => return self.remove(event).await,
            // Its class decides: a refused permission is not retried, a 5xx or a full spool is.
            Err(e) => return Outcome::by_class(e.to_string(), e.class()),
        };
        let mut request = IngestRequest::new(Input::Path(fetched.path.clone()), event.dataset.clone());
        request.source = Some(event.key.clone());
        // The version of the bytes read, which the load must still find in storage to commit.
        request.object_version = object_version(&fetched.meta);
        request.origin = Some(Arc::new(StoredObject::new(self.storage.clone(), event.key.clone())));
        request.modified = object_modified(&fetched.meta);
        request.policy = self.policy_asked(event);
        request.mode = self.mode_asked(event);
        request.key = self.key_asked(event);
        request.force = event.tag.as_ref().is_some_and(|tag| tag.force);
        request.schema_policy =
            event.tag.as_ref().and_then(|tag| tag.schema_policy).unwrap_or(self.options.schema_policy);
        request.geometry_type = self.geometry_type_asked(event);
        request.read = self.read_asked(event);
        request.workers = self.options.parse_threads;
        let request_plan = (request.object_version.clone(), request.policy);
        let summary = match ingest(self.store.clone(), request, Arc::new(Progress::default())).await {
            Ok(s) => s,
            Err(e) => return Outcome::transient(format!("{e:#}")),
        };
        if summary.status == Status::Loaded {
            crate::metrics::features_loaded(&summary.dataset, summary.features_loaded);
        }
        if summary.status == Status::Failed && summary.error_class.is_none_or(ErrorClass::is_transient) {
            // Without a load id, the store could not record the rolled-back load: the next
            // attempt does.
            let unrecorded_load = summary.load_id.is_none().then(|| Box::new(unrecorded(&summary, &request_plan)));
            let reason = summary.error.unwrap_or_else(|| "the load failed".into());
            return Outcome::Transient(Retrying { reason, unrecorded_load });
        }
        let end = crate::jobs::finished_load(&summary);
        Outcome::Done {
            status: end.status.unwrap_or(JobStatus::Failed),
            load_id: end.load_id,
            error: end.error.flatten(),
            result: end.result.unwrap_or_default(),
        }
    }

    async fn remove(&self, event: &ObjectEvent) -> Outcome {
        let origin: Origin = Arc::new(StoredObject::new(self.storage.clone(), event.key.clone()));
        // A removal the API was asked for carries its job's tag: it removes the source's rows
        // in every mode. Storage's own deletions leave an upsert dataset's features.
        let cause = if event.tag.is_some() { RemovalCause::Request } else { RemovalCause::ObjectDeleted };
        match self.store.remove_source(&event.dataset, &event.key, Some(&origin), cause).await {
            Ok(Removal { catalogued: false, rows: 0, .. }) => Outcome::Done {
                status: JobStatus::SkippedDuplicate,
                load_id: None,
                error: None,
                result: json!({ "reason": "the object is gone and no rows of it are stored" }),
            },
            Ok(Removal { mode: Some(DatasetMode::Upsert), kept_rows, .. }) => Outcome::Done {
                status: JobStatus::Succeeded,
                load_id: None,
                error: None,
                result: json!({
                    "removed_rows": 0,
                    "kept_rows": kept_rows,
                    "reason": "the dataset is in upsert mode: the features an object brought stay when it is deleted",
                }),
            },
            Ok(removal) => {
                if removal.mode == Some(DatasetMode::Replace) {
                    if let Err(outcome) = self.fall_back_to_newest(event).await {
                        return outcome;
                    }
                }
                Outcome::Done {
                    status: JobStatus::Succeeded,
                    load_id: None,
                    error: None,
                    result: json!({ "removed_rows": removal.rows, "schema_changes": removal.schema_changes }),
                }
            }
            Err(e) => Outcome::store("removing the source", e),
        }
    }

    /// A dataset in replace mode is its newest object: when the object it held is removed,
    /// the newest one left under the dataset's folder (if any) is announced to load in its
    /// place. Its load orders itself against any newer object like every other.
    async fn fall_back_to_newest(&self, event: &ObjectEvent) -> Result<(), Outcome> {
        let folder = format!("raw/{}/", event.dataset);
        let newest = match self.storage.newest_object(&folder).await {
            Ok(newest) => newest,
            Err(e) => return Err(Outcome::storage(format!("listing {folder}"), &e)),
        };
        let Some(newest) = newest else { return Ok(()) };
        let key = newest.location.to_string();
        let message = events::notification(EventKind::Created, &key, newest.size, None);
        if let Err(e) = self.queue.send(&message).await {
            return Err(Outcome::transient(format!("announcing {key}: {e}")));
        }
        tracing::info!(%key, "the dataset's object was removed: the newest one left loads in its place");
        Ok(())
    }
}

/// The job of an object version the catalog already holds. When the load that holds it ran
/// after this job first started, it was this job's own (its worker stopped between the commit
/// and the job record): the job succeeded. Otherwise the event is a duplicate.
fn already_loaded(job: &Job, loaded: &SourceRecord, version: &str) -> Outcome {
    let instant = |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok();
    let started = job.started_at.as_deref().and_then(instant);
    let ours = job.attempts > 1 && started.is_some_and(|started| instant(&loaded.loaded_at) >= Some(started));
    if ours {
        return Outcome::Done {
            status: JobStatus::Succeeded,
            load_id: Some(loaded.load_id),
            error: None,
            result: json!({
                "reason": "an earlier attempt of this job loaded the object before it could record the job",
                "object_version": version,
                "load_id": loaded.load_id,
                "features_loaded": loaded.feature_count,
                "content_hash": loaded.version.content_hash,
                "bytes": loaded.version.bytes,
            }),
        };
    }
    Outcome::Done {
        status: JobStatus::SkippedDuplicate,
        load_id: Some(loaded.load_id),
        error: None,
        result: json!({ "reason": "this version of the object is already loaded", "object_version": version }),
    }
}

/// How syncing one key ended.
enum Outcome {
    Done { status: JobStatus, load_id: Option<i64>, error: Option<String>, result: serde_json::Value },
    Transient(Retrying),
}

/// A transient failure: why, and a rolled-back load the store could not record then.
struct Retrying {
    reason: String,
    unrecorded_load: Option<Box<(LoadPlan, LoadResult)>>,
}

impl Retrying {
    fn new(reason: String) -> Retrying {
        Retrying { reason, unrecorded_load: None }
    }
}

/// The load history's entry of a load the store rolled back but could not record.
fn unrecorded(summary: &IngestSummary, (object_version, policy): &(Option<String>, Policy)) -> (LoadPlan, LoadResult) {
    let plan = LoadPlan {
        dataset: DatasetName::new(&summary.dataset).expect("the summary names the request's dataset"),
        source: summary.source.clone(),
        version: SourceVersion {
            content_hash: summary.content_hash.clone().unwrap_or_default(),
            bytes: summary.bytes,
            object_version: object_version.clone(),
        },
        schema: Default::default(),
        policy: *policy,
        origin: None,
        schema_policy: Default::default(),
        geometry_type: Default::default(),
        mode: DatasetMode::default(),
        key: FeatureKey::FeatureId,
        modified: None,
        force: false,
        read_settings: String::new(),
    };
    let counts = LoadCounts {
        features_read: summary.features_read,
        features_loaded: summary.features_loaded,
        invalid: summary.invalid,
        repaired: summary.repaired,
        skipped: summary.skipped,
    };
    let result = LoadResult { counts, error: summary.error.clone(), ..LoadResult::default() };
    (plan, result)
}

impl Outcome {
    fn transient(reason: String) -> Outcome {
        Outcome::Transient(Retrying::new(reason))
    }

    /// A store error by its class: a passing fault is retried; a superseded change is a
    /// recorded no-op; anything else fails the job for good (the message is acknowledged).
    fn store(context: &str, e: StoreError) -> Outcome {
        let class = e.class();
        let reason = format!("{context}: {e}");
        match class {
            c if c.is_transient() => Outcome::transient(reason),
            ErrorClass::Superseded => Outcome::Done {
                status: JobStatus::Superseded,
                load_id: None,
                error: None,
                result: json!({ "reason": e.to_string() }),
            },
            _ => Outcome::failed(reason, class),
        }
    }

    fn storage(context: String, e: &object_store::Error) -> Outcome {
        Outcome::by_class(format!("{context}: {e}"), crate::storage::error_class(e))
    }

    /// A fault outside the store by its class: retried if it may pass, else the job fails.
    fn by_class(reason: String, class: ErrorClass) -> Outcome {
        if class.is_transient() {
            Outcome::transient(reason)
        } else {
            Outcome::failed(reason, class)
        }
    }

    fn failed(reason: String, class: ErrorClass) -> Outcome {
        Outcome::Done {
            status: JobStatus::Failed,
            load_id: None,
            result: json!({ "error": reason, "error_class": class }),
            error: Some(reason),
        }
    }
}

/// `base` doubled for each earlier attempt.
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a message's task panicked; the message returns after its visibility timeout");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_saturates() {
        let base = Duration::from_secs(5);
        assert_eq!(backoff(base, 0), base);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 2), base * 2);
        assert_eq!(backoff(base, 4), base * 8);
        assert!(backoff(base, u32::MAX) >= Duration::from_secs(5 << 16));
    }
}
