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

use geoflow_core::report::Policy;
use geoflow_queue::{Delivery, Queue, Receipt, MAX_BATCH};
use geoflow_store::{JobAction, JobStatus, JobUpdate, NewJob, Store};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::events::{self, EventKind, ObjectEvent};
use crate::ingest::{ingest, IngestRequest, Input, Progress, Status};
use crate::storage::{object_version, Storage};

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
        loop {
            attempt += 1;
            match self.attempt_event(job_id, event).await {
                Ok(()) => return Disposition::Ack,
                Err(reason) => {
                    let delay = backoff(self.options.retry_delay, attempt).min(self.options.max_retry_delay);
                    if started.elapsed() + delay > self.options.retry_in_place {
                        let delay = backoff(self.options.retry_delay, receive_count).min(self.options.max_retry_delay);
                        return Disposition::Retry { delay, reason };
                    }
                    tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "transient failure: retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt at an event: `Err` (with the reason) on a transient fault.
    async fn attempt_event(&self, job_id: &str, event: &ObjectEvent) -> Result<(), String> {
        if event.tag.is_none() && event.kind == EventKind::Created {
            // A bucket that notifies the queue itself reports API uploads too; the upload's
            // own message carries its job and options, so this event adds nothing.
            match self.storage.upload_job(&event.key).await {
                Ok(Some(upload_job)) => {
                    tracing::info!(%upload_job, "the object came through the upload API: its own message loads it");
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => return Err(format!("reading object {}: {e}", event.key)),
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
            Err(e) => return Err(format!("recording the job: {e}")),
        };
        if job.status.is_final() {
            tracing::info!(status = job.status.as_str(), "job already finished: duplicate delivery");
            return Ok(());
        }
        if let Err(e) =
            self.store.update_job(job_id, JobUpdate { status: Some(JobStatus::Running), ..JobUpdate::default() }).await
        {
            return Err(format!("starting the job: {e}"));
        }
        tracing::info!(action = ?new.action, "job running");
        let started = std::time::Instant::now();
        let outcome = self.sync(event).await;
        let update = match outcome {
            Outcome::Done { status, load_id, error, result } => {
                crate::metrics::job_finished(new.action, status, started.elapsed());
                tracing::info!(status = status.as_str(), error = error.as_deref().unwrap_or(""), "job finished");
                JobUpdate { status: Some(status), load_id, error: Some(error), result: Some(result) }
            }
            Outcome::Transient(reason) => {
                let update = JobUpdate {
                    status: Some(JobStatus::Queued),
                    error: Some(Some(reason.clone())),
                    ..JobUpdate::default()
                };
                // The store may be the thing that is down: the retry matters, the record less.
                let _ = self.store.update_job(job_id, update).await;
                return Err(reason);
            }
        };
        self.store.update_job(job_id, update).await.map(drop).map_err(|e| format!("finishing the job: {e}"))
    }

    /// Makes the dataset hold what storage holds now under the event's key.
    async fn sync(&self, event: &ObjectEvent) -> Outcome {
        let meta = match self.storage.head(&event.key).await {
            Ok(meta) => meta,
            Err(e) => return Outcome::Transient(format!("reading object {}: {e}", event.key)),
        };
        match meta {
            Some(meta) => {
                let version = object_version(&meta);
                if event.kind == EventKind::Removed {
                    tracing::info!("the object exists again: loading it instead of removing it");
                }
                match self.store.source(&event.dataset, &event.key).await {
                    Ok(Some(loaded)) if version.is_some() && loaded.version.object_version == version => {
                        return Outcome::Done {
                            status: JobStatus::SkippedDuplicate,
                            load_id: Some(loaded.load_id),
                            error: None,
                            result: json!({ "reason": "this version of the object is already loaded", "object_version": version }),
                        };
                    }
                    Ok(_) => {}
                    Err(e) => return Outcome::Transient(format!("reading the catalog: {e}")),
                }
                self.load(event, version).await
            }
            None => self.remove(event).await,
        }
    }

    async fn load(&self, event: &ObjectEvent, version: Option<String>) -> Outcome {
        let fetched = match self.storage.fetch(&event.key, &self.options.spool_dir).await {
            Ok(Some(f)) => f,
            // Deleted between the two calls: the removal event follows; act on it now.
            Ok(None) => return self.remove(event).await,
            Err(e) => return Outcome::Transient(format!("{e:#}")),
        };
        let mut request = IngestRequest::new(Input::Path(fetched.path.clone()), event.dataset.clone());
        request.source = Some(event.key.clone());
        request.object_version = version;
        request.policy = event.tag.as_ref().map_or(self.options.policy, |tag| tag.on_invalid);
        request.workers = self.options.parse_threads;
        let summary = match ingest(self.store.clone(), request, Arc::new(Progress::default())).await {
            Ok(s) => s,
            Err(e) => return Outcome::Transient(format!("{e:#}")),
        };
        if summary.status == Status::Loaded {
            crate::metrics::features_loaded(&summary.dataset, summary.features_loaded);
        }
        let result = serde_json::to_value(&summary).unwrap_or_default();
        let status = match summary.status {
            Status::Loaded => JobStatus::Succeeded,
            Status::Unchanged => JobStatus::SkippedDuplicate,
            Status::Rejected => JobStatus::Failed,
            Status::Failed => {
                return Outcome::Transient(summary.error.unwrap_or_else(|| "the load failed".into()));
            }
        };
        Outcome::Done { status, load_id: summary.load_id, error: summary.error, result }
    }

    async fn remove(&self, event: &ObjectEvent) -> Outcome {
        match self.store.source(&event.dataset, &event.key).await {
            Ok(None) => {
                return Outcome::Done {
                    status: JobStatus::SkippedDuplicate,
                    load_id: None,
                    error: None,
                    result: json!({ "reason": "the object is gone and no rows of it are stored" }),
                }
            }
            Ok(Some(_)) => {}
            Err(e) => return Outcome::Transient(format!("reading the catalog: {e}")),
        }
        match self.store.remove_source(&event.dataset, &event.key).await {
            Ok(rows) => Outcome::Done {
                status: JobStatus::Succeeded,
                load_id: None,
                error: None,
                result: json!({ "removed_rows": rows }),
            },
            Err(e) => Outcome::Transient(format!("removing the source: {e}")),
        }
    }
}

/// How syncing one key ended.
enum Outcome {
    Done { status: JobStatus, load_id: Option<i64>, error: Option<String>, result: serde_json::Value },
    Transient(String),
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
