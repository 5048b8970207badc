//! The ingest pipeline: one source into one dataset, exactly once.
//!
//! Two passes over the source. The schema pass hashes the bytes and infers the property
//! schema, so the store can shape its table before the first row. The load pass runs on
//! several threads — one frames features, workers parse, validate, repair, measure and encode
//! them, a collector keeps their order and applies the policy — while the store writes rows
//! in one transaction that commits only when everything was read.

mod input;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use serde::Serialize;

use geoflow_core::dataset::DatasetName;
use geoflow_core::process::{observe_schema, Processed, Processor};
use geoflow_core::reader::{GeoJsonReader, RawFeature, ReadError, ReaderOptions};
use geoflow_core::report::{Action, FeatureIssue, LoadCounts, Policy};
use geoflow_core::row::{Bbox, Row};
use geoflow_core::schema::{Schema, SchemaBuilder};
use geoflow_store::{LoadMessage, LoadOutcome, LoadPlan, LoadResult, SourceVersion, Store};

pub use input::{Input, Rereadable};

/// What to load, and how.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub input: Input,
    pub dataset: DatasetName,
    /// Source key; defaults to the file name.
    pub source: Option<String>,
    pub policy: Policy,
    pub reader: ReaderOptions,
    /// Threads that parse and encode features.
    pub workers: usize,
    /// Most problems kept in the report (all are counted).
    pub max_issues: usize,
}

impl IngestRequest {
    pub fn new(input: Input, dataset: DatasetName) -> IngestRequest {
        IngestRequest {
            input,
            dataset,
            source: None,
            policy: Policy::Skip,
            reader: ReaderOptions::default(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_issues: 100,
        }
    }
}

/// How a load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The source's rows were replaced (some features may have been skipped).
    Loaded,
    /// The source already held this content.
    Unchanged,
    /// Bad input: the policy rejected it or it is not readable GeoJSON. Retrying will not help.
    Rejected,
    /// Something else went wrong (IO, database). The previous rows are intact.
    Failed,
}

/// The outcome of one ingest, as printed by `geoflow ingest --json`.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub dataset: String,
    pub table: Option<String>,
    pub source: String,
    pub status: Status,
    pub features_read: u64,
    pub features_loaded: u64,
    pub invalid: u64,
    pub repaired: u64,
    pub skipped: u64,
    /// The first problems (see `issue_total` for the count).
    pub errors: Vec<FeatureIssue>,
    pub issue_total: u64,
    /// Why the source was rejected or failed.
    pub error: Option<String>,
    pub load_id: Option<i64>,
    pub content_hash: Option<String>,
    pub bytes: u64,
    pub bbox: Option<Bbox>,
    pub replaced_rows: u64,
    pub duration_ms: u64,
}

impl IngestSummary {
    fn new(req: &IngestRequest, source: &str) -> IngestSummary {
        IngestSummary {
            dataset: req.dataset.to_string(),
            table: None,
            source: source.to_string(),
            status: Status::Failed,
            features_read: 0,
            features_loaded: 0,
            invalid: 0,
            repaired: 0,
            skipped: 0,
            errors: Vec::new(),
            issue_total: 0,
            error: None,
            load_id: None,
            content_hash: None,
            bytes: 0,
            bbox: None,
            replaced_rows: 0,
            duration_ms: 0,
        }
    }

    fn absorb(&mut self, result: &LoadResult) {
        let c = result.counts;
        (self.features_read, self.features_loaded, self.invalid, self.repaired, self.skipped) =
            (c.features_read, c.features_loaded, c.invalid, c.repaired, c.skipped);
        self.errors = result.issues.clone();
        self.issue_total = result.issue_total;
        self.error = result.error.clone();
        self.bbox = result.bbox;
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read in the current pass.
    pub bytes: Arc<AtomicU64>,
    /// Size of the source, once known.
    pub total_bytes: AtomicU64,
    /// Features processed in the load pass.
    pub features: AtomicU64,
    /// 1 during the schema pass, 2 during the load pass.
    pub pass: AtomicU64,
}

/// Loads one source. Errors of the input or the store end up in the summary (status
/// `rejected` or `failed`); `Err` is returned only when not even that could be recorded.
pub async fn ingest(store: Arc<dyn Store>, req: IngestRequest, progress: Arc<Progress>) -> anyhow::Result<IngestSummary> {
    let started = Instant::now();
    let source = req.source.clone().unwrap_or_else(|| req.input.default_source());
    let mut summary = IngestSummary::new(&req, &source);

    let input = req.input.clone();
    let opened = tokio::task::spawn_blocking(move || Rereadable::open(&input)).await?;
    let data = match opened {
        Ok(d) => Arc::new(d),
        Err(e) => {
            summary.error = Some(format!("cannot read {source}: {e}"));
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(summary);
        }
    };
    progress.total_bytes.store(data.len, Ordering::Relaxed);

    // Pass 1: hash and schema.
    progress.pass.store(1, Ordering::Relaxed);
    let (d, opts, counter) = (data.clone(), req.reader, progress.bytes.clone());
    let scanned = tokio::task::spawn_blocking(move || schema_pass(&d, opts, counter)).await?;
    let mut plan = LoadPlan {
        dataset: req.dataset.clone(),
        source: source.clone(),
        version: SourceVersion { content_hash: String::new(), bytes: data.len },
        schema: Schema::default(),
        policy: req.policy,
    };
    match scanned {
        Ok(scan) => {
            plan.version.content_hash = scan.hash;
            plan.version.bytes = scan.bytes;
            plan.schema = scan.schema;
        }
        Err(e) => {
            summary.status = if matches!(e, ReadError::Io(_)) { Status::Failed } else { Status::Rejected };
            let result = LoadResult { error: Some(format!("{source}: {e}")), ..LoadResult::default() };
            summary.absorb(&result);
            summary.load_id = Some(store.record_failure(&plan, &result).await?);
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(summary);
        }
    }
    summary.content_hash = Some(plan.version.content_hash.clone());
    summary.bytes = plan.version.bytes;

    // Pass 2: load.
    progress.pass.store(2, Ordering::Relaxed);
    let (tx, rx) = tokio::sync::mpsc::channel::<LoadMessage>(4);
    let load = {
        let (store, plan) = (store.clone(), plan.clone());
        tokio::spawn(async move { store.load(plan, rx).await })
    };
    let (d, req2, progress2, expected) = (data.clone(), req.clone(), progress.clone(), plan.version.content_hash.clone());
    let schema = plan.schema.clone();
    let source2 = source.clone();
    let fed = tokio::task::spawn_blocking(move || load_pass(&d, &req2, &source2, &schema, &expected, &progress2, tx)).await?;
    let outcome = load.await?;
    summary.absorb(&fed.result);
    summary.status = fed.status;
    match outcome {
        Ok(LoadOutcome::Loaded { load_id, table, replaced_rows }) => {
            summary.load_id = Some(load_id);
            summary.table = Some(table);
            summary.replaced_rows = replaced_rows;
        }
        Ok(LoadOutcome::Unchanged { load_id, table }) => {
            // The store found this content already loaded and stopped reading rows.
            summary = IngestSummary { status: Status::Unchanged, load_id: Some(load_id), table: Some(table), ..IngestSummary::new(&req, &source) };
            summary.content_hash = Some(plan.version.content_hash.clone());
            summary.bytes = plan.version.bytes;
        }
        Ok(LoadOutcome::Failed { load_id, table }) => {
            summary.load_id = Some(load_id);
            summary.table = Some(table);
        }
        Err(e) => {
            summary.status = Status::Failed;
            summary.error = Some(format!("{e}"));
        }
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

struct SchemaScan {
    schema: Schema,
    hash: String,
    bytes: u64,
}

fn schema_pass(data: &Rereadable, opts: ReaderOptions, counter: Arc<AtomicU64>) -> Result<SchemaScan, ReadError> {
    let mut reader = GeoJsonReader::new(data.reader(counter)?, opts);
    let mut schema = SchemaBuilder::default();
    for raw in reader.by_ref() {
        observe_schema(&raw?, &mut schema);
    }
    let (hash, bytes) = reader.into_inner().finish();
    Ok(SchemaScan { schema: schema.finish(), hash, bytes })
}

/// Features per batch handed between threads, and the byte budget of one batch.
const BATCH_FEATURES: usize = 1024;
const BATCH_BYTES: usize = 4 << 20;

struct Batch {
    seq: u64,
    raws: Vec<RawFeature>,
}

struct Done {
    seq: u64,
    rows: Vec<Row>,
    issues: Vec<FeatureIssue>,
    read: u64,
}

struct Fed {
    status: Status,
    result: LoadResult,
}

/// Runs the load pass on threads and feeds the store; returns what the reader saw.
fn load_pass(
    data: &Rereadable,
    req: &IngestRequest,
    source: &str,
    schema: &Schema,
    expected_hash: &str,
    progress: &Progress,
    tx: tokio::sync::mpsc::Sender<LoadMessage>,
) -> Fed {
    let stop = AtomicBool::new(false);
    let workers = req.workers.max(1);
    let (batch_tx, batch_rx) = bounded::<Batch>(workers * 2);
    let (done_tx, done_rx) = bounded::<Done>(workers * 2);
    let processor = Processor::new(schema, req.policy);
    std::thread::scope(|s| {
        let framing = s.spawn(|| frame(data, req.reader, &progress.bytes, &stop, batch_tx));
        for _ in 0..workers {
            let (batch_rx, done_tx, processor) = (batch_rx.clone(), done_tx.clone(), &processor);
            s.spawn(move || work(processor, batch_rx, done_tx));
        }
        drop((batch_rx, done_tx));
        let mut fed = collect(req, source, progress, &stop, done_rx, &tx);
        let framed = framing.join().expect("framing thread does not panic");
        if fed.status == Status::Loaded {
            let failure = match framed {
                Err(ReadError::Io(e)) => Some((Status::Failed, format!("{source}: cannot read {}: {e}", data.name))),
                Err(e) => Some((Status::Rejected, format!("{source}: {e}"))),
                Ok((hash, _)) if hash != expected_hash => {
                    Some((Status::Failed, format!("{source}: {} changed while it was being loaded; load it again", data.name)))
                }
                Ok(_) => None,
            };
            if let Some((status, why)) = failure {
                fed.status = status;
                fed.result.error = Some(why);
            }
        }
        let message = if fed.status == Status::Loaded { LoadMessage::Commit(fed.result.clone()) } else { LoadMessage::Abort(fed.result.clone()) };
        // A closed channel means the store already finished (unchanged source, or its own error).
        let _ = tx.blocking_send(message);
        fed
    })
}

/// Cuts the source into batches of raw features.
fn frame(data: &Rereadable, opts: ReaderOptions, bytes: &Arc<AtomicU64>, stop: &AtomicBool, out: Sender<Batch>) -> Result<(String, u64), ReadError> {
    let mut reader = GeoJsonReader::new(data.reader(bytes.clone())?, opts);
    let mut batch = Vec::with_capacity(BATCH_FEATURES);
    let mut batch_bytes = 0usize;
    let mut seq = 0u64;
    for raw in reader.by_ref() {
        let raw = raw?;
        batch_bytes += raw.bytes.len();
        batch.push(raw);
        if batch.len() >= BATCH_FEATURES || batch_bytes >= BATCH_BYTES {
            if stop.load(Ordering::Relaxed) || out.send(Batch { seq, raws: std::mem::take(&mut batch) }).is_err() {
                return Ok(reader.into_inner().finish());
            }
            seq += 1;
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        let _ = out.send(Batch { seq, raws: batch });
    }
    Ok(reader.into_inner().finish())
}

fn work(processor: &Processor, input: Receiver<Batch>, output: Sender<Done>) {
    for batch in input {
        let mut done = Done { seq: batch.seq, rows: Vec::with_capacity(batch.raws.len()), issues: Vec::new(), read: batch.raws.len() as u64 };
        for raw in &batch.raws {
            match processor.process(raw) {
                Processed::Row(row, issue) => {
                    done.rows.push(row);
                    done.issues.extend(issue);
                }
                Processed::Invalid(issue) => done.issues.push(issue),
            }
        }
        if output.send(done).is_err() {
            return;
        }
    }
}

/// Puts processed batches back in order, applies the policy, counts, and feeds the store.
fn collect(
    req: &IngestRequest,
    source: &str,
    progress: &Progress,
    stop: &AtomicBool,
    done: Receiver<Done>,
    tx: &tokio::sync::mpsc::Sender<LoadMessage>,
) -> Fed {
    let mut fed = Fed { status: Status::Loaded, result: LoadResult::default() };
    let mut pending = BTreeMap::new();
    let mut next = 0u64;
    for d in done {
        pending.insert(d.seq, d);
        while let Some(d) = pending.remove(&next) {
            next += 1;
            if fed.status != Status::Loaded {
                continue;
            }
            let r = &mut fed.result;
            let counts: &mut LoadCounts = &mut r.counts;
            counts.features_read += d.read;
            counts.features_loaded += d.rows.len() as u64;
            for issue in d.issues {
                counts.invalid += 1;
                match issue.action {
                    Action::Repaired => counts.repaired += 1,
                    Action::Skipped => counts.skipped += 1,
                    Action::Rejected => {}
                }
                r.issue_total += 1;
                let rejected = issue.action == Action::Rejected;
                if rejected {
                    r.error = Some(format!(
                        "{}: feature {}{} is invalid and the policy is reject: {}",
                        source,
                        issue.index,
                        issue.id.as_ref().map(|id| format!(" (id {id})")).unwrap_or_default(),
                        issue.reason
                    ));
                }
                if r.issues.len() < req.max_issues {
                    r.issues.push(issue);
                }
                if rejected {
                    fed.status = Status::Rejected;
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
            if fed.status != Status::Loaded {
                continue;
            }
            for row in &d.rows {
                if let Some(g) = &row.geometry {
                    r.bbox = Bbox::merge(r.bbox, g.bbox);
                }
            }
            progress.features.fetch_add(d.read, Ordering::Relaxed);
            if !d.rows.is_empty() && tx.blocking_send(LoadMessage::Rows(d.rows)).is_err() {
                // The store stopped listening (unchanged content or its own failure).
                stop.store(true, Ordering::Relaxed);
                fed.status = Status::Failed;
            }
        }
    }
    fed
}
